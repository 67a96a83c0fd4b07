"""The CycleGAN family: two generators, two PatchGANs, image pools, and a pure train step.

G maps domain A to domain B and F maps B to A; D_A scores images of A and D_B images of B. The
networks are in models/cyclegan.py, the losses in losses.py and the pools in image_pool.py.
"""

import functools
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx
from flax import struct

from jaxgan import families
from jaxgan import image_pool
from jaxgan import losses
from jaxgan import optim
from jaxgan.config_checks import cyclegan as cyclegan_checks
from jaxgan.data import unpaired
from jaxgan.models import cyclegan as cyclegan_models

# Streams folded into the root key `jax.random.key(config.seed)`.
_INIT_STREAM = 0
# Grid rows: A, G(A), F(G(A)), B, F(B), G(F(B)).
GRID_ROWS = 6


@struct.dataclass
class CycleGANState:
  """Everything a CycleGAN run needs to continue: four networks, four Adam states, two pools.

  `pool_a` stores fakes of domain A (outputs of F) for D_A, and `pool_b` fakes of domain B
  (outputs of G) for D_B. G and F share one graph definition, as do D_A and D_B.
  """

  step: jax.Array
  g_params: nnx.State
  f_params: nnx.State
  d_a_params: nnx.State
  d_b_params: nnx.State
  g_opt_state: optax.OptState
  f_opt_state: optax.OptState
  d_a_opt_state: optax.OptState
  d_b_opt_state: optax.OptState
  pool_a: image_pool.ImagePool
  pool_b: image_pool.ImagePool
  generator_graphdef: Any = struct.field(pytree_node=False)
  discriminator_graphdef: Any = struct.field(pytree_node=False)


def _apply(graphdef, params, inputs):
  return nnx.merge(graphdef, params)(inputs)


def translate(generator_graphdef: Any, params: nnx.State, images: jax.Array) -> jax.Array:
  """Runs G or F (chosen by `params`) on images [N, s, s, 3] in [-1, 1]."""
  return _apply(generator_graphdef, params, images)


def batch_std(images: jax.Array) -> jax.Array:
  """Returns the standard deviation over the batch axis, averaged over pixels and channels."""
  return jnp.std(images, axis=0).mean()


def train_step(
    state: CycleGANState,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    config: ml_collections.ConfigDict,
    tx_g: optax.GradientTransformation,
    tx_d: optax.GradientTransformation,
    schedule_g: optax.Schedule,
    schedule_d: optax.Schedule,
) -> tuple[CycleGANState, dict[str, jax.Array]]:
  """Runs one CycleGAN iteration: a joint G and F update, then D_A and D_B updates.

  1. fake_b = G(a), rec_a = F(fake_b), fake_a = F(b), rec_b = G(fake_a).
  2. G and F minimise adv(D_B(fake_b)) + adv(D_A(fake_a)) + lambda (|rec_a - a| + |rec_b - b|)
     + lambda * identity_weight (|G(b) - b| + |F(a) - a|), with D_A and D_B as they were before
     this step. L1 terms are means over pixels, lambda = loss.cycle_weight.
  3. fake_a and fake_b pass through their pools (image_pool.query). D_A minimises
     adversarial_d_loss(D_A(a), D_A(pooled fake_a)) and D_B likewise. No gradient reaches G or F.

  Every network uses instance norm, which has no running statistics, so train and inference
  mode are the same.

  Args:
    state: the train state.
    batch: {"image_a": float32 [B, s, s, 3], "image_b": float32 [B, s, s, 3]}, in [-1, 1].
    key: the run's training key; (pool_key_a, pool_key_b) = split(fold_in(key, step)).

  Returns:
    The new state and scalar metrics: g_loss (the total of step 2), adv_g_loss, adv_f_loss,
    cycle_a_loss, cycle_b_loss, identity_a_loss (|F(a) - a|), identity_b_loss (|G(b) - b|),
    d_loss (d_a_loss + d_b_loss), d_a_loss, d_b_loss, mean D outputs d_a_real, d_a_fake,
    d_b_real, d_b_fake, the gradient norms and learning rates, and the collapse monitors
    g_change (mean |G(a) - a|), f_change, g_batch_std and f_batch_std (see `batch_std`).
  """
  step_key = jax.random.fold_in(key, state.step)
  pool_key_a, pool_key_b = jax.random.split(step_key)
  real_a, real_b = batch["image_a"], batch["image_b"]
  kind = config.loss.adversarial
  cycle_weight = config.loss.cycle_weight
  identity_weight = config.loss.identity_weight * cycle_weight
  generator, discriminator = state.generator_graphdef, state.discriminator_graphdef

  def generator_loss_fn(g_params, f_params):
    fake_b = _apply(generator, g_params, real_a)
    rec_a = _apply(generator, f_params, fake_b)
    fake_a = _apply(generator, f_params, real_b)
    rec_b = _apply(generator, g_params, fake_a)
    terms = {
        "adv_g_loss": losses.adversarial_g_loss(
            kind, _apply(discriminator, state.d_b_params, fake_b)),
        "adv_f_loss": losses.adversarial_g_loss(
            kind, _apply(discriminator, state.d_a_params, fake_a)),
        "cycle_a_loss": losses.l1(rec_a, real_a),
        "cycle_b_loss": losses.l1(rec_b, real_b),
    }
    total = (terms["adv_g_loss"] + terms["adv_f_loss"]
             + cycle_weight * (terms["cycle_a_loss"] + terms["cycle_b_loss"]))
    if identity_weight > 0:
      terms["identity_a_loss"] = losses.l1(_apply(generator, f_params, real_a), real_a)
      terms["identity_b_loss"] = losses.l1(_apply(generator, g_params, real_b), real_b)
      total += identity_weight * (terms["identity_a_loss"] + terms["identity_b_loss"])
    return total, (terms, fake_a, fake_b)

  (g_loss, (terms, fake_a, fake_b)), (g_grads, f_grads) = jax.value_and_grad(
      generator_loss_fn, argnums=(0, 1), has_aux=True)(state.g_params, state.f_params)
  g_updates, g_opt_state = tx_g.update(g_grads, state.g_opt_state, state.g_params)
  f_updates, f_opt_state = tx_g.update(f_grads, state.f_opt_state, state.f_params)

  pool_a, pooled_fake_a = image_pool.query(state.pool_a, fake_a, pool_key_a)
  pool_b, pooled_fake_b = image_pool.query(state.pool_b, fake_b, pool_key_b)

  def discriminator_loss_fn(d_params, real, fake):
    real_outputs = _apply(discriminator, d_params, real)
    fake_outputs = _apply(discriminator, d_params, fake)
    loss = losses.adversarial_d_loss(kind, real_outputs, fake_outputs)
    return loss, (real_outputs.mean(), fake_outputs.mean())

  d_grad_fn = jax.value_and_grad(discriminator_loss_fn, has_aux=True)
  (d_a_loss, (d_a_real, d_a_fake)), d_a_grads = d_grad_fn(state.d_a_params, real_a, pooled_fake_a)
  (d_b_loss, (d_b_real, d_b_fake)), d_b_grads = d_grad_fn(state.d_b_params, real_b, pooled_fake_b)
  d_a_updates, d_a_opt_state = tx_d.update(d_a_grads, state.d_a_opt_state, state.d_a_params)
  d_b_updates, d_b_opt_state = tx_d.update(d_b_grads, state.d_b_opt_state, state.d_b_params)

  new_state = state.replace(
      step=state.step + 1,
      g_params=optax.apply_updates(state.g_params, g_updates),
      f_params=optax.apply_updates(state.f_params, f_updates),
      d_a_params=optax.apply_updates(state.d_a_params, d_a_updates),
      d_b_params=optax.apply_updates(state.d_b_params, d_b_updates),
      g_opt_state=g_opt_state, f_opt_state=f_opt_state, d_a_opt_state=d_a_opt_state,
      d_b_opt_state=d_b_opt_state, pool_a=pool_a, pool_b=pool_b)
  metrics = {
      **terms,
      "g_loss": g_loss,
      "d_loss": d_a_loss + d_b_loss,
      "d_a_loss": d_a_loss,
      "d_b_loss": d_b_loss,
      "d_a_real": d_a_real,
      "d_a_fake": d_a_fake,
      "d_b_real": d_b_real,
      "d_b_fake": d_b_fake,
      "g_grad_norm": optax.tree.norm(g_grads),
      "f_grad_norm": optax.tree.norm(f_grads),
      "d_a_grad_norm": optax.tree.norm(d_a_grads),
      "d_b_grad_norm": optax.tree.norm(d_b_grads),
      "lr_g": jnp.asarray(schedule_g(state.step), jnp.float32),
      "lr_d": jnp.asarray(schedule_d(state.step), jnp.float32),
      "g_change": jnp.abs(fake_b - real_a).mean(),
      "f_change": jnp.abs(fake_a - real_b).mean(),
      "g_batch_std": batch_std(fake_b),
      "f_batch_std": batch_std(fake_a),
  }
  return new_state, metrics


def collapse_warnings(
    config: ml_collections.ConfigDict, epoch_means: dict[str, float]) -> dict[str, float]:
  """Checks an epoch's mean collapse monitors; logs a warning for each generator that collapsed.

  Returns {"collapse_identity_g": 0 or 1, ...} for G and F, one flag per kind of collapse. The
  constant-output check is skipped (flag 0) for batches of one image, whose batch std is always 0.
  """
  flags = {}
  for name, direction in (("g", "A->B"), ("f", "B->A")):
    change = epoch_means.get(f"{name}_change")
    spread = epoch_means.get(f"{name}_batch_std")
    identity = change is not None and change < config.monitor.min_change
    constant = (config.data.batch_size >= 2 and spread is not None
                and spread < config.monitor.min_batch_std)
    if identity:
      logging.warning(
          "Generator %s (%s) has collapsed to the identity: mean |%s(x) - x| = %.4g is below "
          "monitor.min_change = %g.", name.upper(), direction, name.upper(), change,
          config.monitor.min_change)
    if constant:
      logging.warning(
          "Generator %s (%s) has collapsed to a constant image: its batch std %.4g is below "
          "monitor.min_batch_std = %g.", name.upper(), direction, spread,
          config.monitor.min_batch_std)
    flags[f"collapse_identity_{name}"] = float(identity)
    flags[f"collapse_constant_{name}"] = float(constant)
  return flags


class CycleGANFamily(families.Family):
  """CycleGAN with ResNet generators, PatchGANs, image pools, cycle and identity losses."""

  progress_metrics = ("adv_g_loss", "adv_f_loss", "cycle_a_loss", "cycle_b_loss", "d_a_loss",
                      "d_b_loss")

  def validate(self, config: ml_collections.ConfigDict) -> None:
    cyclegan_checks.validate(config)

  def init_state(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> CycleGANState:
    key = jax.random.fold_in(jax.random.key(config.seed), _INIT_STREAM)
    g, f, d_a, d_b = cyclegan_models.build(
        config.model.width_g, config.model.num_blocks, config.model.width_d, key)
    generator_graphdef, g_params = nnx.split(g, nnx.Param)
    _, f_params = nnx.split(f, nnx.Param)
    discriminator_graphdef, d_a_params = nnx.split(d_a, nnx.Param)
    _, d_b_params = nnx.split(d_b, nnx.Param)
    tx_g, tx_d, _, _ = optim.make_gan_optimizers(config, steps_per_epoch)
    size = config.data.image_size
    return CycleGANState(
        step=jnp.zeros((), jnp.int32), g_params=g_params, f_params=f_params,
        d_a_params=d_a_params, d_b_params=d_b_params, g_opt_state=tx_g.init(g_params),
        f_opt_state=tx_g.init(f_params), d_a_opt_state=tx_d.init(d_a_params),
        d_b_opt_state=tx_d.init(d_b_params),
        pool_a=image_pool.create(config.loss.pool_size, (size, size, 3)),
        pool_b=image_pool.create(config.loss.pool_size, (size, size, 3)),
        generator_graphdef=generator_graphdef, discriminator_graphdef=discriminator_graphdef)

  def make_train_step(self, config: ml_collections.ConfigDict, steps_per_epoch: int):
    return optim.bind_gan_optimizers(train_step, config, steps_per_epoch)

  def make_source(self, config: ml_collections.ConfigDict) -> unpaired.UnpairedSource:
    return unpaired.make_source(config)

  def epoch_batches(
      self,
      source: unpaired.UnpairedSource,
      config: ml_collections.ConfigDict,
      *,
      epoch: int,
      start_batch: int,
      sharding: Any,
  ) -> Iterator[dict[str, np.ndarray]]:
    return unpaired.epoch_batches(
        source, seed=config.seed, epoch=epoch, global_batch_size=config.data.batch_size,
        start_batch=start_batch, sharding=sharding,
        prefetch_batches=config.data.prefetch_batches)

  def batch_spec(self, config: ml_collections.ConfigDict,
                 source: unpaired.UnpairedSource) -> dict[str, jax.ShapeDtypeStruct]:
    shape = (config.data.batch_size, source.image_size, source.image_size, 3)
    return {"image_a": jax.ShapeDtypeStruct(shape, jnp.float32),
            "image_b": jax.ShapeDtypeStruct(shape, jnp.float32)}

  def grid_shape(self, config: ml_collections.ConfigDict) -> tuple[int, int]:
    return (GRID_ROWS, config.train.grid_columns)

  def fixed_latents(self, config: ml_collections.ConfigDict, num: int) -> dict[str, jax.Array]:
    """Returns {"a": [n, s, s, 3], "b": [n, s, s, 3]}: fixed training images of each domain,
    chosen from config.seed, with n = num / 6 (one per grid column)."""
    columns = num // GRID_ROWS
    return {"a": jnp.asarray(unpaired.fixed_images(config, "a", columns)),
            "b": jnp.asarray(unpaired.fixed_images(config, "b", columns))}

  def generate(self, state: CycleGANState, latents: dict[str, jax.Array]) -> jax.Array:
    """Returns the grid rows A, G(A), F(G(A)), B, F(B), G(F(B)), concatenated: [6n, s, s, 3]."""
    a, b = latents["a"], latents["b"]
    run = functools.partial(translate, state.generator_graphdef)
    g_a = run(state.g_params, a)
    f_b = run(state.f_params, b)
    return jnp.concatenate([a, g_a, run(state.f_params, g_a), b, f_b, run(state.g_params, f_b)])

  def epoch_metrics(self, config: ml_collections.ConfigDict,
                    epoch_means: dict[str, float]) -> dict[str, float]:
    return collapse_warnings(config, epoch_means)


FAMILY = CycleGANFamily()
