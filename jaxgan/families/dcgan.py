"""The DCGAN family: train state, pure train step and sampler for the models in models/dcgan.py."""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from flax import struct

from jaxgan import families
from jaxgan import losses
from jaxgan import optim
from jaxgan.config_checks import dcgan as dcgan_checks
from jaxgan.models import dcgan as dcgan_models
from jaxgan.models import sdpc_gan

# Streams folded into the root key `jax.random.key(config.seed)`.
_INIT_STREAM, _FIXED_LATENTS_STREAM = 0, 2
# Stream folded into a step's key for the augmentation of the real images. The z and label keys
# are split from the step key itself, so they stay the same whether augmentation is on or off.
_AUGMENT_STREAM = 1


@struct.dataclass
class DCGANState:
  """Everything a DCGAN run needs to continue: weights, BatchNorm statistics, optimizer states.

  `*_params` hold the nnx.Param variables and `*_stats` the BatchNorm running statistics
  (nnx.BatchStat) of each network; the graph definitions are static.
  """

  step: jax.Array
  g_params: nnx.State
  g_stats: nnx.State
  d_params: nnx.State
  d_stats: nnx.State
  g_opt_state: optax.OptState
  d_opt_state: optax.OptState
  g_graphdef: Any = struct.field(pytree_node=False)
  d_graphdef: Any = struct.field(pytree_node=False)


def _apply(graphdef, params, stats, inputs, *, train: bool):
  """Runs a network from its split state; returns (outputs, updated BatchNorm statistics).

  In training mode, BatchNorm normalises with the statistics of `inputs` and updates the running
  statistics. These are the statistics of the whole global batch, because the batch axis is
  sharded across devices, not split into separate programs. In inference mode, BatchNorm uses the
  running statistics and leaves them unchanged.
  """
  model = nnx.merge(graphdef, params, stats, copy=True)
  outputs = model(inputs, train=train)
  return outputs, nnx.state(model, nnx.BatchStat)


def sample_latents(key: jax.Array, num: int, dim: int, distribution: str) -> jax.Array:
  """Returns z [num, dim] from N(0, 1) ("normal") or U(-1, 1) ("uniform")."""
  if distribution == "normal":
    return jax.random.normal(key, (num, dim))
  if distribution == "uniform":
    return jax.random.uniform(key, (num, dim), minval=-1.0, maxval=1.0)
  raise ValueError(f"unknown latent distribution {distribution!r}")


def augment_real(
    real: jax.Array, key: jax.Array, *, random_flip: bool, noise_max: float
) -> jax.Array:
  """Flips each image horizontally with probability 0.5 and adds N(0, std^2) noise to every pixel.

  One std ~ U(0, noise_max) is drawn for the whole batch. Flips are skipped when `random_flip` is
  False and noise when `noise_max` is 0; with both off, `real` is returned unchanged. The result is
  not clipped to [-1, 1]. Each random draw covers the global batch, so the result does not depend
  on how many devices share it.
  """
  flip_key, std_key, noise_key = jax.random.split(key, 3)
  if random_flip:
    flip = jax.random.bernoulli(flip_key, 0.5, (real.shape[0], 1, 1, 1))
    real = jnp.where(flip, real[:, :, ::-1, :], real)
  if noise_max > 0:
    std = jax.random.uniform(std_key, (), minval=0.0, maxval=noise_max)
    real = real + std * jax.random.normal(noise_key, real.shape, real.dtype)
  return real


def train_step(
    state: DCGANState,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    config: ml_collections.ConfigDict,
    tx_g: optax.GradientTransformation,
    tx_d: optax.GradientTransformation,
    schedule_g: optax.Schedule,
    schedule_d: optax.Schedule,
) -> tuple[DCGANState, dict[str, jax.Array]]:
  """Runs one DCGAN iteration: a D update, then a G update against the updated D.

  1. fakes = G(z) with G in training mode, z [B, latent_dim] fresh for this step.
  2. D update on BCE(D(x'), t) + BCE(D(fakes), 0), t ~ U(real_label_min, real_label_max) drawn
     once per batch, where x' is the real batch after `augment_real` (data.random_flip,
     loss.real_noise_max). D scores the real and the fake batch in two separate forward passes,
     so BatchNorm normalises each with its own statistics. No gradient reaches G.
  3. G update on BCE(D'(fakes), 1), or the thresholded loss when g_threshold > 0, where D' is
     the updated D scoring the same fakes.

  Keys: step_key = fold_in(key, step), and (z_key, label_key) = split(step_key), as before the
  augmentation options existed. The augmentation key is fold_in(step_key, 1), so it changes
  neither z nor t, and with both options off it is not used.

  Args:
    state: the train state.
    batch: {"image": float32 [B, s, s, 3] in [-1, 1], "g_threshold": float32 scalar,
      "lr_scale": float32 scalar}. The trainer adds "g_threshold" from
      `DCGANFamily.step_inputs`. Without it the step uses config.loss.g_threshold as a constant,
      which compiles the step once per value. The trainer also adds "lr_scale" (1 unless a
      rollback lowered it); both optimizer updates are multiplied by it, which for Adam and SGD
      equals multiplying the learning rates. Without it the scale is 1.
    key: the run's training key; the step number is folded in here, so the randomness of a step
      depends only on the key and `state.step`.

  Returns:
    The new state and scalar metrics: d_loss, g_loss, d_real and d_fake (mean sigmoid scores of
    the real and fake batch in the D update), d_fake_after (fakes scored by the updated D),
    real_target, g_grad_norm, d_grad_norm, lr_g, lr_d.
  """
  step_key = jax.random.fold_in(key, state.step)
  z_key, label_key = jax.random.split(step_key)
  real = augment_real(
      batch["image"], jax.random.fold_in(step_key, _AUGMENT_STREAM),
      random_flip=config.data.random_flip, noise_max=config.loss.real_noise_max)
  g_threshold = batch.get("g_threshold", jnp.float32(config.loss.g_threshold))
  lr_scale = batch.get("lr_scale", jnp.float32(1.0))
  z = sample_latents(
      z_key, real.shape[0], config.model.latent_dim, config.model.latent_distribution)
  real_target = jax.random.uniform(
      label_key, (), minval=config.loss.real_label_min, maxval=config.loss.real_label_max)

  # G runs forward once. Its VJP is kept for step 3: G's weights do not change in between, so this
  # equals a second forward pass and updates G's running statistics only once.
  def generate(g_params):
    return _apply(state.g_graphdef, g_params, state.g_stats, z, train=True)

  fakes, generator_vjp, g_stats = jax.vjp(generate, state.g_params, has_aux=True)

  def d_loss_fn(d_params):
    real_logits, d_stats = _apply(state.d_graphdef, d_params, state.d_stats, real, train=True)
    fake_logits, d_stats = _apply(
        state.d_graphdef, d_params, d_stats, jax.lax.stop_gradient(fakes), train=True)
    loss = losses.discriminator_loss(
        real_logits, fake_logits, real_target, config.loss.d_reduction)
    return loss, (d_stats, real_logits, fake_logits)

  (d_loss, (d_stats, real_logits, fake_logits)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(state.d_params)
  d_updates, d_opt_state = tx_d.update(d_grads, state.d_opt_state, state.d_params)
  d_updates = optax.tree.scale(lr_scale, d_updates)
  d_params = optax.apply_updates(state.d_params, d_updates)

  def g_loss_fn(fakes):
    logits, new_d_stats = _apply(state.d_graphdef, d_params, d_stats, fakes, train=True)
    return losses.thresholded_generator_loss(logits, g_threshold), (new_d_stats, logits)

  (g_loss, (d_stats, fake_logits_after)), fake_grads = jax.value_and_grad(
      g_loss_fn, has_aux=True)(fakes)
  (g_grads,) = generator_vjp(fake_grads)
  g_updates, g_opt_state = tx_g.update(g_grads, state.g_opt_state, state.g_params)
  g_updates = optax.tree.scale(lr_scale, g_updates)
  g_params = optax.apply_updates(state.g_params, g_updates)

  new_state = state.replace(
      step=state.step + 1, g_params=g_params, g_stats=g_stats, d_params=d_params,
      d_stats=d_stats, g_opt_state=g_opt_state, d_opt_state=d_opt_state)
  metrics = {
      "d_loss": d_loss,
      "g_loss": g_loss,
      "d_real": jax.nn.sigmoid(real_logits).mean(),
      "d_fake": jax.nn.sigmoid(fake_logits).mean(),
      "d_fake_after": jax.nn.sigmoid(fake_logits_after).mean(),
      "real_target": real_target,
      "g_grad_norm": optax.tree.norm(g_grads),
      "d_grad_norm": optax.tree.norm(d_grads),
      "lr_g": jnp.asarray(schedule_g(state.step) * lr_scale, jnp.float32),
      "lr_d": jnp.asarray(schedule_d(state.step) * lr_scale, jnp.float32),
  }
  return new_state, metrics


class DCGANFamily(families.Family):
  """DCGANs trained with BCE losses, one D update then one G update per batch."""

  def validate(self, config: ml_collections.ConfigDict) -> None:
    dcgan_checks.validate(config)


  def init_state(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> DCGANState:
    key = jax.random.fold_in(jax.random.key(config.seed), _INIT_STREAM)
    if config.model.arch in sdpc_gan.FUSION_ARCHITECTURES:
      generator, discriminator = sdpc_gan.build(config, key)
    else:
      generator, discriminator = dcgan_models.build(
          config.model.arch, config.data.image_size, config.model.latent_dim,
          config.model.bn_epsilon, config.model.width, key, init=config.model.init,
          dtype=config.model.dtype)
    g_graphdef, g_params, g_stats = nnx.split(generator, nnx.Param, nnx.BatchStat)
    d_graphdef, d_params, d_stats = nnx.split(discriminator, nnx.Param, nnx.BatchStat)
    tx_g, tx_d, _, _ = optim.make_gan_optimizers(config, steps_per_epoch)
    return DCGANState(
        step=jnp.zeros((), jnp.int32), g_params=g_params, g_stats=g_stats, d_params=d_params,
        d_stats=d_stats, g_opt_state=tx_g.init(g_params), d_opt_state=tx_d.init(d_params),
        g_graphdef=g_graphdef, d_graphdef=d_graphdef)

  def make_train_step(self, config: ml_collections.ConfigDict, steps_per_epoch: int):
    return optim.bind_gan_optimizers(train_step, config, steps_per_epoch)

  def step_inputs(self, config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """Returns {"g_threshold": float32 scalar} from config.loss.g_threshold.

    The threshold travels in the batch, not in the state, so checkpoints keep their structure and
    a resumed run takes the threshold of its current config.
    """
    return {"g_threshold": np.float32(config.loss.g_threshold)}

  def fixed_latents(self, config: ml_collections.ConfigDict, num: int) -> jax.Array:
    key = jax.random.fold_in(jax.random.key(config.seed), _FIXED_LATENTS_STREAM)
    return sample_latents(
        key, num, config.model.latent_dim, config.model.latent_distribution)

  def generate(self, state: DCGANState, latents: jax.Array) -> jax.Array:
    images, _ = _apply(state.g_graphdef, state.g_params, state.g_stats, latents, train=False)
    return images


FAMILY = DCGANFamily()
