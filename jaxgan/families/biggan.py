"""The BigGAN-lite family: train state, pure train step and sampler for models/biggan.py.

Unconditional models train on any image source. Conditional models (model.num_classes > 0)
train on class folders, data.dir/<class>/*, with batches {"image", "label"}.
"""

import functools
import math
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from flax import struct

from jaxgan import config_lib
from jaxgan import diffaugment
from jaxgan import families
from jaxgan import losses
from jaxgan import optim
from jaxgan import parallel
from jaxgan.errors import ConfigError
from jaxgan.models import biggan as biggan_models

# Streams folded into the root key `jax.random.key(config.seed)`.
_INIT_STREAM, _FIXED_LATENTS_STREAM = 0, 2
# Streams folded into a step's key: one key per D update, one for the G update.
_D_STREAM, _G_STREAM = 0, 1

# Variables that are state but not trained: BatchNorm running statistics and the
# power-iteration vectors of spectral normalisation.
_STATS = (nnx.BatchStat, biggan_models.SpectralVector)


@struct.dataclass
class BigGANState:
  """Everything a BigGAN run needs to continue.

  `g_stats` contains G's BatchNorm running statistics and spectral-norm vectors, `d_stats` D's
  spectral-norm vectors. `ema_params` is the moving average of `g_params`.
  """

  step: jax.Array
  g_params: nnx.State
  g_stats: nnx.State
  ema_params: nnx.State
  d_params: nnx.State
  d_stats: nnx.State
  g_opt_state: optax.OptState
  d_opt_state: optax.OptState
  g_graphdef: Any = struct.field(pytree_node=False)
  d_graphdef: Any = struct.field(pytree_node=False)


def architecture(config: ml_collections.ConfigDict) -> biggan_models.Architecture:
  """Returns the network shapes that a (validated) config describes."""
  model = config.model
  return biggan_models.Architecture(
      image_size=config.data.image_size, width=model.width,
      g_multipliers=tuple(model.g_multipliers), d_multipliers=tuple(model.d_multipliers),
      attention_resolution=model.attention_resolution, latent_dim=model.latent_dim,
      num_classes=model.num_classes, embed_dim=model.embed_dim, bn_epsilon=model.bn_epsilon)


def _generate(graphdef, params, stats, z, labels, *, train: bool):
  """Runs G; returns (images, updated statistics). Training mode updates BN and SN state."""
  model = nnx.merge(graphdef, params, stats, copy=True)
  images = model(z, labels, train=train)
  return images, nnx.state(model, _STATS)


def _discriminate(graphdef, params, stats, images, labels):
  """Runs D in training mode (one power iteration per weight); returns (logits, new stats)."""
  model = nnx.merge(graphdef, params, stats, copy=True)
  logits = model(images, labels, update_sn=True)
  return logits, nnx.state(model, _STATS)


def orthogonal_regularization(params: nnx.State) -> jax.Array:
  """Returns sum over kernels W of ||W^T W * (1 - I)||_F^2, W reshaped to [fan_in, out].

  Only leaves named "kernel" count, so biases, BatchNorm scales, the attention gain and the class
  embedding (named "embedding") are left out.
  """
  total = jnp.zeros((), jnp.float32)
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    names = [getattr(entry, "key", getattr(entry, "name", None)) for entry in path]
    if "kernel" not in names:
      continue
    matrix = leaf.reshape(-1, leaf.shape[-1])
    gram = matrix.T @ matrix
    off_diagonal = gram * (1.0 - jnp.eye(gram.shape[0], dtype=gram.dtype))
    total = total + jnp.sum(off_diagonal**2)
  return total


def ema_update(ema: Any, params: Any, step: jax.Array, decay: jax.Array,
               start_step: int) -> Any:
  """Returns the EMA after the update of train step `step` (0-based).

  Before `start_step`, the EMA copies `params`; from it on, ema = decay * ema + (1 - decay) *
  params.
  """
  started = step >= start_step
  return jax.tree.map(
      lambda average, value: jnp.where(started, decay * average + (1.0 - decay) * value, value),
      ema, params)


def truncated_normal(key: jax.Array, shape: tuple[int, ...], threshold: float) -> jax.Array:
  """Draws N(0, 1) values and redraws every value with |z| > threshold until none is left.

  threshold <= 0 returns plain N(0, 1) values. Small thresholds take more rounds: the loop runs
  until the last value is inside, about log(n) / -log(P(|z| > threshold)) rounds for n values.
  """
  z = jax.random.normal(key, shape)
  if threshold <= 0:
    return z

  def outside(carry):
    values, _ = carry
    return jnp.any(jnp.abs(values) > threshold)

  def redraw(carry):
    values, round_key = carry
    round_key, draw_key = jax.random.split(round_key)
    fresh = jax.random.normal(draw_key, shape)
    return jnp.where(jnp.abs(values) > threshold, fresh, values), round_key

  z, _ = jax.lax.while_loop(outside, redraw, (z, jax.random.fold_in(key, 1)))
  return z


def _split_for_d_steps(x: jax.Array, d_steps: int) -> jax.Array:
  """Reshapes [B, ...] to [d_steps, B / d_steps, ...]; part i contains rows i, i + d_steps, ...

  Taking every d_steps-th row, not contiguous blocks, keeps each device's rows on that device
  when the batch axis is sharded and B / d_steps is a multiple of the device count.
  """
  return jnp.swapaxes(x.reshape(x.shape[0] // d_steps, d_steps, *x.shape[1:]), 0, 1)


def train_step(
    state: BigGANState,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    config: ml_collections.ConfigDict,
    tx_g: optax.GradientTransformation,
    tx_d: optax.GradientTransformation,
    schedule_g: optax.Schedule,
    schedule_d: optax.Schedule,
) -> tuple[BigGANState, dict[str, jax.Array]]:
  """Runs one BigGAN iteration: loss.d_steps D updates, then one G update, then the EMA.

  With n = loss.d_steps and b = B / n:
  1. The batch is split into n parts of b images (`_split_for_d_steps`). D update i, on
     part i, draws z [b, latent_dim] and uniform fake labels and makes b
     fakes with G in training mode. So G's BatchNorm uses the fake batch's statistics and
     updates its running statistics and SN vectors, but no gradient reaches G. D then
     minimises the hinge loss on DiffAugment(real part i) and DiffAugment(fakes), scoring
     reals and fakes in one forward pass.
  2. The G update draws fresh z and labels for b fakes and minimises the hinge loss
     -mean(D(DiffAugment(G(z)))) + loss.orthogonal_weight * orthogonal_regularization, against
     the D of the last update.
  3. ema_params follows g_params (`ema_update`).
  Every training forward pass of G or D runs one power iteration per spectral-normalised weight
  and keeps the new vectors.

  Keys: step_key = fold_in(key, step); D update i uses fold_in(fold_in(step_key, 0), i), the
  G update fold_in(step_key, 1), each split into (z, label, augmentation) keys.

  Args:
    state: the train state.
    batch: {"image": float32 [B, s, s, 3] in [-1, 1], "label": int32 [B] (conditional models),
      "ema_decay", "orthogonal_weight": float32 scalars}. The trainer adds the scalars from
      `BigGANFamily.step_inputs`; without them the step uses the config's values as constants.
    key: the run's training key.

  Returns:
    The new state and scalar metrics: d_loss, d_real and d_fake (mean D logits of the reals and
    fakes, averaged over the D updates), g_loss (the hinge term), orthogonal (the regulariser,
    unweighted), g_grad_norm, d_grad_norm, lr_g, lr_d.
  """
  d_steps = config.loss.d_steps
  num_classes = config.model.num_classes
  conditional = num_classes > 0
  ops = diffaugment.parse_policy(config.loss.augment)
  ema_decay = batch.get("ema_decay", jnp.float32(config.model.ema_decay))
  orthogonal_weight = batch.get(
      "orthogonal_weight", jnp.float32(config.loss.orthogonal_weight))

  images = batch["image"]
  part_size = images.shape[0] // d_steps
  real_labels = batch["label"] if conditional else jnp.zeros((images.shape[0],), jnp.int32)
  step_key = jax.random.fold_in(key, state.step)
  d_keys = jax.vmap(functools.partial(jax.random.fold_in, jax.random.fold_in(step_key, _D_STREAM)))(
      jnp.arange(d_steps))

  def draw_inputs(draw_key, reference):
    z_key, label_key, augment_key = jax.random.split(draw_key, 3)
    z = jax.random.normal(z_key, (part_size, config.model.latent_dim))
    z = parallel.shard_batch_like(z, reference)
    labels = None
    if conditional:
      labels = jax.random.randint(label_key, (part_size,), 0, num_classes)
      labels = parallel.shard_batch_like(labels, reference)
    return z, labels, augment_key

  def d_update(carry, inputs):
    d_params, d_stats, d_opt_state, g_stats = carry
    real, labels, d_key = inputs
    z, fake_labels, augment_key = draw_inputs(d_key, real)
    fakes, g_stats = _generate(
        state.g_graphdef, state.g_params, g_stats, z, fake_labels, train=True)
    both = diffaugment.augment(
        jnp.concatenate([real, jax.lax.stop_gradient(fakes)]), augment_key, ops)
    both_labels = jnp.concatenate([labels, fake_labels]) if conditional else None

    def loss_fn(params):
      logits, new_stats = _discriminate(state.d_graphdef, params, d_stats, both, both_labels)
      real_logits, fake_logits = logits[:part_size], logits[part_size:]
      loss = losses.hinge_discriminator_loss(real_logits, fake_logits)
      return loss, (new_stats, real_logits.mean(), fake_logits.mean())

    (loss, (d_stats, real_mean, fake_mean)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(d_params)
    updates, d_opt_state = tx_d.update(grads, d_opt_state, d_params)
    d_params = optax.apply_updates(d_params, updates)
    metrics = {"d_loss": loss, "d_real": real_mean, "d_fake": fake_mean,
               "d_grad_norm": optax.tree.norm(grads)}
    return (d_params, d_stats, d_opt_state, g_stats), metrics

  # The D updates are unrolled in Python, not run by `lax.scan`. Inside a while loop, XLA:CPU
  # (jaxlib 0.10.2) runs the convolution gradients in a slow generic kernel, because it leaves
  # them in a layout that its fast kernels do not take. With `lax.scan`, the
  # biggan_lite_chars32 step was 14x slower (docs/benchmarks.md).
  carry = (state.d_params, state.d_stats, state.d_opt_state, state.g_stats)
  real_parts = _split_for_d_steps(images, d_steps)
  label_parts = _split_for_d_steps(real_labels, d_steps)
  update_metrics = []
  for index in range(d_steps):
    carry, metrics = d_update(carry, (real_parts[index], label_parts[index], d_keys[index]))
    update_metrics.append(metrics)
  d_params, d_stats, d_opt_state, g_stats = carry
  d_metrics = {name: jnp.stack([metrics[name] for metrics in update_metrics])
               for name in update_metrics[0]}

  z, fake_labels, augment_key = draw_inputs(jax.random.fold_in(step_key, _G_STREAM), images)

  def g_loss_fn(g_params):
    fakes, new_g_stats = _generate(
        state.g_graphdef, g_params, g_stats, z, fake_labels, train=True)
    logits, new_d_stats = _discriminate(
        state.d_graphdef, d_params, d_stats, diffaugment.augment(fakes, augment_key, ops),
        fake_labels)
    adversarial = losses.hinge_generator_loss(logits)
    orthogonal = orthogonal_regularization(g_params)
    total = adversarial + orthogonal_weight * orthogonal
    return total, (new_g_stats, new_d_stats, adversarial, orthogonal)

  (_, (g_stats, d_stats, g_loss, orthogonal)), g_grads = jax.value_and_grad(
      g_loss_fn, has_aux=True)(state.g_params)
  g_updates, g_opt_state = tx_g.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  ema_params = ema_update(
      state.ema_params, g_params, state.step, ema_decay, config.model.ema_start_step)

  new_state = state.replace(
      step=state.step + 1, g_params=g_params, g_stats=g_stats, ema_params=ema_params,
      d_params=d_params, d_stats=d_stats, g_opt_state=g_opt_state, d_opt_state=d_opt_state)
  metrics = {name: value.mean() for name, value in d_metrics.items()}
  metrics.update({
      "g_loss": g_loss,
      "orthogonal": orthogonal,
      "g_grad_norm": optax.tree.norm(g_grads),
      "lr_g": jnp.asarray(schedule_g(state.step), jnp.float32),
      "lr_d": jnp.asarray(schedule_d(state.step), jnp.float32),
  })
  return new_state, metrics


def _fail(key: str, value: Any, reason: str) -> ConfigError:
  return ConfigError(
      f"Invalid config value {key}={value!r}: {reason}. Change it in the config file or pass "
      f"--config.{key}=<value>.")


def _check_multipliers(config: ml_collections.ConfigDict, key: str, expected: int) -> None:
  value = config_lib.get(config, key)
  if (not isinstance(value, (tuple, list)) or len(value) != expected
      or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in value)):
    raise _fail(key, value, f"must be {expected} positive integers for data.image_size="
                f"{config.data.image_size}, for example {(1,) * expected}")


def _validate_model(config: ml_collections.ConfigDict) -> None:
  config_lib.check_choice(config, "model.arch", ("biggan_lite",))
  size = config.data.image_size
  if size < 8 or size & (size - 1):
    raise _fail("data.image_size", size, "the BigGAN-lite networks double the resolution from "
                "4x4, so it must be a power of 2 of at least 8 (for example 32, 64 or 128)")
  num_g_blocks = int(math.log2(size // 4))
  config_lib.check_number(config, "model.width", low=1, integer=True)
  _check_multipliers(config, "model.g_multipliers", num_g_blocks)
  _check_multipliers(config, "model.d_multipliers", num_g_blocks + 1)
  resolution = config_lib.get(config, "model.attention_resolution")
  allowed = [0] + [2**k for k in range(3, num_g_blocks + 3)]
  if resolution not in allowed:
    raise _fail("model.attention_resolution", resolution,
                f"must be 0 (no attention) or one of {allowed[1:]}")
  config_lib.check_number(config, "model.latent_dim", low=num_g_blocks + 1, integer=True)
  config_lib.check_number(config, "model.num_classes", low=0, integer=True)
  config_lib.check_number(config, "model.embed_dim", low=1, integer=True)
  config_lib.check_number(config, "model.bn_epsilon", low=0, low_inclusive=False)
  config_lib.check_number(config, "model.ema_decay", low=0, high=1, high_inclusive=False)
  config_lib.check_number(config, "model.ema_start_step", low=0, integer=True)


def _validate_training(config: ml_collections.ConfigDict) -> None:
  config_lib.check_number(config, "loss.d_steps", low=1, integer=True)
  if config.data.batch_size % config.loss.d_steps:
    raise _fail("data.batch_size", config.data.batch_size,
                f"must be a multiple of loss.d_steps={config.loss.d_steps}, because each D "
                "update takes an equal part of the batch")
  config_lib.check_number(config, "loss.orthogonal_weight", low=0)
  try:
    diffaugment.parse_policy(str(config_lib.get(config, "loss.augment")))
  except ValueError as error:
    raise _fail("loss.augment", config.loss.augment,
                f"{error}; use a comma-separated list or \"\" for none") from None
  config_lib.check_choice(config, "sample.weights", ("ema", "raw"))
  config_lib.check_number(config, "sample.truncation", low=0)
  if 0 < config.sample.truncation < 0.05:
    raise _fail("sample.truncation", config.sample.truncation,
                "must be 0 (off) or at least 0.05, because smaller values take thousands of "
                "redraws")
  config_lib.check_number(config, "sample.grid_columns", low=1, integer=True)
  config_lib.check_number(config, "sample.grid_rows", low=1, integer=True)

  num_classes = config.model.num_classes
  if num_classes and config.data.source != "folder":
    raise _fail("data.source", config.data.source,
                f"a conditional model (model.num_classes={num_classes}) reads class "
                "subfolders, so it needs the 'folder' source with data.dir set to their parent")
  names = class_names(config)
  if names and len(names) != num_classes:
    raise _fail("data.class_names", config.data.class_names,
                f"lists {len(names)} classes but model.num_classes={num_classes}")


def class_names(config: ml_collections.ConfigDict) -> list[str]:
  """Returns the names in data.class_names, in label order ([] when it is empty)."""
  return [name.strip() for name in str(config.data.class_names).split(",") if name.strip()]


class BigGANFamily(families.Family):
  """BigGAN-lite: hinge loss, several D updates per G update, EMA of G, DiffAugment."""

  progress_metrics = ("d_loss", "g_loss", "d_real", "d_fake")

  def validate(self, config: ml_collections.ConfigDict) -> None:
    _validate_model(config)
    _validate_training(config)

  def init_state(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> BigGANState:
    key = jax.random.fold_in(jax.random.key(config.seed), _INIT_STREAM)
    generator, discriminator = biggan_models.build(architecture(config), key)
    g_graphdef, g_params, g_stats = nnx.split(generator, nnx.Param, _STATS)
    d_graphdef, d_params, d_stats = nnx.split(discriminator, nnx.Param, _STATS)
    tx_g, tx_d, _, _ = optim.make_gan_optimizers(config, steps_per_epoch)
    return BigGANState(
        step=jnp.zeros((), jnp.int32), g_params=g_params, g_stats=g_stats,
        ema_params=jax.tree.map(jnp.copy, g_params), d_params=d_params, d_stats=d_stats,
        g_opt_state=tx_g.init(g_params), d_opt_state=tx_d.init(d_params),
        g_graphdef=g_graphdef, d_graphdef=d_graphdef)

  def make_train_step(self, config: ml_collections.ConfigDict, steps_per_epoch: int):
    return optim.bind_gan_optimizers(train_step, config, steps_per_epoch)

  def step_inputs(self, config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """Returns the EMA decay and the orthogonal weight as float32 scalars."""
    return {"ema_decay": np.float32(config.model.ema_decay),
            "orthogonal_weight": np.float32(config.loss.orthogonal_weight)}

  def make_source(self, config: ml_collections.ConfigDict) -> Any:
    """Creates the image source, or for a conditional model the class-folder source.

    For a conditional model this also sets config.data.class_names to the class folder names,
    in label order, so that the saved config records them.
    """
    if not config.model.num_classes:
      return super().make_source(config)
    from jaxgan.data import labeled  # pylint: disable=g-import-not-at-top

    found = labeled.check_num_classes(config.data.dir, config.model.num_classes)
    source = labeled.make_source(
        config.data.dir, config.data.image_size, min_images=config.data.batch_size,
        num_threads=config.data.num_threads)
    expected = class_names(config)
    if expected and expected != found:
      raise _fail("data.class_names", config.data.class_names,
                  f"the class folders of {config.data.dir} are {','.join(found)}; pass those "
                  "names in this order, or \"\" to take them from the folders")
    config.data.class_names = ",".join(found)
    return source

  def epoch_batches(self, source: Any, config: ml_collections.ConfigDict, *, epoch: int,
                    start_batch: int, sharding: Any) -> Iterator[dict[str, np.ndarray]]:
    if not config.model.num_classes:
      yield from super().epoch_batches(
          source, config, epoch=epoch, start_batch=start_batch, sharding=sharding)
      return
    from jaxgan.data import pipeline  # pylint: disable=g-import-not-at-top

    dataset = pipeline.make_epoch_dataset(
        source.images, seed=config.seed, epoch=epoch, global_batch_size=config.data.batch_size,
        start_batch=start_batch, sharding=sharding,
        prefetch_batches=config.data.prefetch_batches, labels=source.labels)
    yield from pipeline.iterate_epoch(dataset)

  def batch_spec(
      self, config: ml_collections.ConfigDict, source: Any) -> dict[str, jax.ShapeDtypeStruct]:
    spec = super().batch_spec(config, source)
    if config.model.num_classes:
      spec["label"] = jax.ShapeDtypeStruct((config.data.batch_size,), jnp.int32)
    return spec

  def grid_shape(self, config: ml_collections.ConfigDict) -> tuple[int, int]:
    """Returns (classes, columns) for a conditional model, else (grid_rows, grid_columns)."""
    rows = config.model.num_classes or config.sample.grid_rows
    return (rows, config.sample.grid_columns)

  def fixed_latents(self, config: ml_collections.ConfigDict, num: int) -> dict[str, jax.Array]:
    """Returns {"z", "label", "use_ema"} for a grid of `num` images, row by row.

    In a conditional grid, row r shows class r and column c uses the same z in every row, so a
    column differs only in its class. z is truncated at sample.truncation.
    """
    rows, columns = self.grid_shape(config)
    if num != rows * columns:
      raise ValueError(f"expected {rows * columns} grid images, got {num}")
    key = jax.random.fold_in(jax.random.key(config.seed), _FIXED_LATENTS_STREAM)
    latent_dim = config.model.latent_dim
    if config.model.num_classes:
      z = truncated_normal(key, (columns, latent_dim), config.sample.truncation)
      z = jnp.tile(z, (rows, 1))
      labels = jnp.repeat(jnp.arange(rows, dtype=jnp.int32), columns)
    else:
      z = truncated_normal(key, (num, latent_dim), config.sample.truncation)
      labels = jnp.zeros((num,), jnp.int32)
    return {"z": z, "label": labels, "use_ema": jnp.asarray(config.sample.weights == "ema")}

  def evaluation_latents(self, config: ml_collections.ConfigDict,
                         num: int) -> dict[str, jax.Array]:
    """Returns {"z", "label", "use_ema"} for `num` images, with the classes taking turns.

    The images are those of a sample grid with enough columns, taken column by column, so that
    class counts differ by at most one. As in the grid, images of one column share z.
    """
    rows = config.model.num_classes or 1
    columns = -(-num // rows)
    grid_config = ml_collections.ConfigDict(config.to_dict())
    grid_config.sample.grid_rows = 1
    grid_config.sample.grid_columns = columns
    latents = self.fixed_latents(grid_config, rows * columns)
    order = np.arange(rows * columns).reshape(rows, columns).T.ravel()[:num]
    return {"z": latents["z"][order], "label": latents["label"][order],
            "use_ema": latents["use_ema"]}

  def generate(self, state: BigGANState, latents: dict[str, jax.Array]) -> jax.Array:
    """Runs G in inference mode with the EMA or the raw weights, as latents["use_ema"] selects.

    BatchNorm uses the running statistics, which the raw G's training passes estimated.
    NOTE: BigGAN recomputes these statistics for the EMA weights ("standing statistics"); here
    the EMA samples use those of the raw weights.
    """
    params = jax.tree.map(lambda ema, raw: jnp.where(latents["use_ema"], ema, raw),
                          state.ema_params, state.g_params)
    images, _ = _generate(state.g_graphdef, params, state.g_stats, latents["z"],
                          latents["label"], train=False)
    return images

  def sample_info(self, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Returns the weights, truncation and row labels behind the sample grids."""
    info = {"weights": config.sample.weights, "truncation": config.sample.truncation}
    if config.model.num_classes:
      info["rows"] = class_names(config)
    return info


FAMILY = BigGANFamily()
