"""GAN losses on discriminator logits."""

import jax
import jax.numpy as jnp
import optax


def bce(logits: jax.Array, targets: jax.Array | float) -> jax.Array:
  """Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1].

  Computed from the logits (as PyTorch's `binary_cross_entropy_with_logits`), which stays finite
  where a sigmoid followed by a log would saturate.
  """
  targets = jnp.broadcast_to(jnp.asarray(targets, logits.dtype), logits.shape)
  return optax.sigmoid_binary_cross_entropy(logits, targets).mean()


def discriminator_loss(
    real_logits: jax.Array, fake_logits: jax.Array, real_target: jax.Array, reduction: str
) -> jax.Array:
  """BCE(D(x), real_target) + BCE(D(G(z)), 0), or half of it when `reduction` is "mean"."""
  total = bce(real_logits, real_target) + bce(fake_logits, 0.0)
  if reduction == "mean":
    return 0.5 * total
  if reduction == "sum":
    return total
  raise ValueError(f"unknown reduction {reduction!r}; expected 'sum' or 'mean'")


def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """Non-saturating generator loss BCE(D(G(z)), 1)."""
  return bce(fake_logits, 1.0)
