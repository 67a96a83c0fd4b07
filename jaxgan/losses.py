"""GAN losses on discriminator logits."""

import jax
import jax.numpy as jnp
import optax

from jaxgan.config_checks import cyclegan as cyclegan_checks


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


def thresholded_generator_loss(fake_logits: jax.Array, threshold: jax.Array) -> jax.Array:
  """G's BCE where the fakes D rejects hardest get a softer target.

  With threshold 0 this is BCE(D(G(z)), 1), the plain `generator_loss`. With threshold > 0, the
  k = floor(threshold * B) fakes with the lowest logits get target 0.5 and all other fakes get
  target 0.95. Ties in the logits are broken by position, lowest index first.

  Args:
    fake_logits: D's logits for the B fakes, [B].
    threshold: float32 scalar array in [0, 1]. It is an array, not a Python float, so that a
      jitted step compiles once for every threshold value.
  """
  num_fakes = fake_logits.shape[0]
  threshold = jnp.asarray(threshold, jnp.float32)
  num_low = jnp.floor(threshold * num_fakes).astype(jnp.int32)
  # The rank of each logit in ascending order; the double argsort is stable, so equal logits are
  # ranked by position.
  ranks = jnp.argsort(jnp.argsort(fake_logits, stable=True), stable=True)
  thresholded_targets = jnp.where(ranks < num_low, 0.5, 0.95)
  targets = jnp.where(threshold > 0, thresholded_targets, 1.0).astype(fake_logits.dtype)
  return bce(fake_logits, targets)


def hinge_discriminator_loss(
    real_logits: jax.Array, fake_logits: jax.Array, *, scale: float = 1.0) -> jax.Array:
  """Hinge loss of D: scale * (mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))).

  BigGAN uses scale 1. `adversarial_d_loss` passes 0.5, because it halves its other losses too.
  """
  return scale * (jax.nn.relu(1.0 - real_logits).mean() + jax.nn.relu(1.0 + fake_logits).mean())


def hinge_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """Hinge loss of G: -mean(D(G(z)))."""
  return -fake_logits.mean()


# Adversarial objectives on raw discriminator outputs (logits, or least-squares scores), defined
# with the config checks because those run before JAX is imported.
ADVERSARIAL_LOSSES = cyclegan_checks.ADVERSARIAL_LOSSES


def adversarial_d_loss(kind: str, real_outputs: jax.Array, fake_outputs: jax.Array) -> jax.Array:
  """Returns half the sum of D's real and fake terms, each a mean over all outputs.

  lsgan: (D(x) - 1)^2 and D(G(z))^2 (Mao et al., 2017). non_saturating: BCE(D(x), 1) and
  BCE(D(G(z)), 0) on logits. hinge: relu(1 - D(x)) and relu(1 + D(G(z))). The factor 1/2 slows D
  relative to G, as in the CycleGAN authors' code.
  """
  if kind == "lsgan":
    real_term = jnp.square(real_outputs - 1.0).mean()
    fake_term = jnp.square(fake_outputs).mean()
  elif kind == "non_saturating":
    real_term = bce(real_outputs, 1.0)
    fake_term = bce(fake_outputs, 0.0)
  elif kind == "hinge":
    return hinge_discriminator_loss(real_outputs, fake_outputs, scale=0.5)
  else:
    raise ValueError(f"unknown adversarial loss {kind!r}; expected one of {ADVERSARIAL_LOSSES}")
  return 0.5 * (real_term + fake_term)


def adversarial_g_loss(kind: str, fake_outputs: jax.Array) -> jax.Array:
  """Returns G's term for D's outputs on fakes, a mean over all outputs.

  lsgan: (D(G(z)) - 1)^2. non_saturating: BCE(D(G(z)), 1). hinge: -D(G(z)).
  """
  if kind == "lsgan":
    return jnp.square(fake_outputs - 1.0).mean()
  if kind == "non_saturating":
    return bce(fake_outputs, 1.0)
  if kind == "hinge":
    return hinge_generator_loss(fake_outputs)
  raise ValueError(f"unknown adversarial loss {kind!r}; expected one of {ADVERSARIAL_LOSSES}")


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
  """Returns the mean absolute difference, as the cycle and identity losses of CycleGAN use."""
  return jnp.abs(x - y).mean()
