"""The SDPC family: dictionary learning for Sparse Deep Predictive Coding through the trainer.

Each step infers the codes of a batch with the current dictionaries (no gradient flows through
inference), then takes one SGD step per layer on 1/2 ||gamma_{i-1} - D_i^T gamma_i||^2 / B with
the codes fixed (no feedback term), and rescales every atom to unit norm. The "sample grid" shows
the learned atoms: the first rows layer 1's atoms, the next rows layer 2's atoms back-projected to
pixels, and so on.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from jaxgan import config_lib
from jaxgan import families
from jaxgan.errors import ConfigError
from jaxgan.sdpc import dictionary as dictionary_lib
from jaxgan.sdpc import inference
from jaxgan.sdpc import preprocess

_INIT_STREAM, _POWER_STREAM = 0, 3
_GRID_COLUMNS = 8
_GRID_ROWS_PER_LAYER = 4


@struct.dataclass
class SDPCState:
  """Dictionaries [k, k, C_i, K_i] of every layer and their SGD momentum states."""

  step: jax.Array
  dictionaries: tuple[jax.Array, ...]
  opt_states: tuple[optax.OptState, ...]
  layers: tuple[dictionary_lib.LayerGeometry, ...] = struct.field(pytree_node=False)


def layer_geometry(config: ml_collections.ConfigDict) -> tuple[dictionary_lib.LayerGeometry, ...]:
  model = config.model
  return dictionary_lib.make_geometry(
      config.data.image_size, 3, tuple(model.atoms), tuple(model.kernel_sizes),
      tuple(model.strides))


def inference_settings(config: ml_collections.ConfigDict) -> inference.InferenceSettings:
  model = config.model
  return inference.InferenceSettings(
      lambdas=tuple(float(value) for value in model.lambdas), k_fb=float(model.k_fb),
      solver=model.solver, max_iterations=model.max_iterations, tolerance=model.tolerance)


def _optimizers(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, ...]:
  return tuple(optax.sgd(float(lr), momentum=config.optim.momentum)
               for lr in config.optim.dictionary_lrs)


def train_step(
    state: SDPCState,
    batch: dict[str, jax.Array],
    key: jax.Array,
    *,
    layers: tuple[dictionary_lib.LayerGeometry, ...],
    settings: inference.InferenceSettings,
    optimizers: tuple[optax.GradientTransformation, ...],
    power_iterations: int,
    preprocess_steps: tuple[str, ...],
) -> tuple[SDPCState, dict[str, jax.Array]]:
  """Infers the codes of batch["image"] [B, s, s, 3], then updates and renormalises each layer.

  Each SGD update is multiplied by batch["lr_scale"] (1 when absent), which the trainer lowers
  after a rollback.
  """
  images = preprocess.apply(batch["image"], preprocess_steps)
  lr_scale = batch.get("lr_scale", jnp.float32(1.0))
  power_key = jax.random.fold_in(jax.random.fold_in(key, state.step), _POWER_STREAM)
  etas = inference.step_sizes(
      state.dictionaries, layers, settings.k_fb, power_iterations, power_key)
  result = inference.infer(images, state.dictionaries, layers, settings, etas)
  codes = jax.lax.stop_gradient(result.codes)

  def dictionary_losses(dictionaries):
    losses = inference.reconstruction_losses(images, codes, dictionaries, layers)
    per_layer = tuple(jnp.mean(loss) for loss in losses)
    return sum(per_layer), per_layer

  gradients, per_layer_loss = jax.grad(dictionary_losses, has_aux=True)(state.dictionaries)
  new_dictionaries, new_opt_states = [], []
  for atoms, gradient, optimizer, opt_state in zip(
      state.dictionaries, gradients, optimizers, state.opt_states):
    updates, opt_state = optimizer.update(gradient, opt_state, atoms)
    updates = optax.tree.scale(lr_scale, updates)
    new_dictionaries.append(dictionary_lib.normalize_atoms(optax.apply_updates(atoms, updates)))
    new_opt_states.append(opt_state)

  metrics = _code_metrics(images, result, state.dictionaries, layers, settings)
  for index, loss in enumerate(per_layer_loss):
    metrics[f"dictionary_loss_{index + 1}"] = loss
  new_state = state.replace(
      step=state.step + 1, dictionaries=tuple(new_dictionaries), opt_states=tuple(new_opt_states))
  return new_state, metrics


def _code_metrics(images, result, dictionaries, layers, settings) -> dict[str, jax.Array]:
  """Relative reconstruction error in pixels, active fraction and L1 per layer, energy, iterations."""
  metrics = {}
  image_energy = jnp.maximum(jnp.sum(images**2, axis=(1, 2, 3)), 1e-12)
  for index, code in enumerate(result.codes):
    level = index + 1
    reconstruction = inference.back_project(code, level, dictionaries, layers)
    error = jnp.sum((images - reconstruction) ** 2, axis=(1, 2, 3)) / image_energy
    metrics[f"recon_error_{level}"] = jnp.mean(error)
    metrics[f"active_{level}"] = jnp.mean((code > 0).astype(jnp.float32))
    metrics[f"l1_{level}"] = jnp.mean(jnp.sum(code, axis=(1, 2, 3)))
  metrics["energy"] = jnp.mean(
      inference.energy(images, result.codes, dictionaries, layers, settings))
  metrics["iterations"] = jnp.mean(result.iterations.astype(jnp.float32))
  metrics["max_iterations_hit"] = jnp.mean(
      (result.iterations >= settings.max_iterations).astype(jnp.float32))
  return metrics


def atom_images(
    dictionaries: tuple[jax.Array, ...],
    layers: tuple[dictionary_lib.LayerGeometry, ...],
    per_layer: int,
) -> jax.Array:
  """Returns `per_layer` atoms of every layer in pixels, [L * per_layer, R, R, 3] in [-1, 1].

  Each atom is scaled by its largest absolute value and padded with zeros (mid-grey) to the
  largest receptive field R. Layers with fewer atoms are padded with blank tiles.
  """
  fields = [dictionary_lib.receptive_fields(dictionaries, layers, level)
            for level in range(1, len(layers) + 1)]
  size = max(field.shape[1] for field in fields)
  tiles = []
  for field in fields:
    field = field[:per_layer]
    scale = jnp.max(jnp.abs(field), axis=(1, 2, 3), keepdims=True)
    field = field / jnp.maximum(scale, 1e-12)
    before = (size - field.shape[1]) // 2
    after = size - field.shape[1] - before
    field = jnp.pad(field, ((0, per_layer - field.shape[0]), (before, after), (before, after),
                            (0, 0)))
    tiles.append(field)
  return jnp.concatenate(tiles, axis=0)


class SDPCFamily(families.Family):
  """Hierarchical convolutional sparse coding dictionaries learned with the shared trainer."""

  progress_metrics = ("recon_error_1", "recon_error_2", "active_1", "active_2", "iterations")

  def validate(self, config: ml_collections.ConfigDict) -> None:
    model = config.model
    num_layers = len(model.atoms)
    for key in ("model.kernel_sizes", "model.strides", "model.lambdas", "optim.dictionary_lrs"):
      values = config_lib.get(config, key)
      if not isinstance(values, (tuple, list)) or len(values) != num_layers:
        raise ConfigError(
            f"Invalid config value {key}={values!r}: it needs one entry per layer, "
            f"{num_layers} like model.atoms={tuple(model.atoms)}. Pass --config.{key}=(...).")
    for key, low, low_inclusive in (("model.atoms", 1, True), ("model.kernel_sizes", 1, True),
                                    ("model.strides", 1, True), ("model.lambdas", 0, True),
                                    ("optim.dictionary_lrs", 0, False)):
      for value in config_lib.get(config, key):
        integer = key != "model.lambdas" and key != "optim.dictionary_lrs"
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or (
            value < low if low_inclusive else value <= low):
          relation = ">=" if low_inclusive else ">"
          kind = "integers" if integer else "numbers"
          raise ConfigError(
              f"Invalid config value {key}={tuple(config_lib.get(config, key))!r}: every entry "
              f"must be {kind} {relation} {low}. Pass --config.{key}=(...).")
    config_lib.check_number(config, "model.k_fb", low=0)
    config_lib.check_choice(config, "model.solver", ("ista", "fista"))
    config_lib.check_number(config, "model.tolerance", low=0)
    config_lib.check_number(config, "model.max_iterations", low=1, integer=True)
    config_lib.check_number(config, "model.power_iterations", low=1, integer=True)
    config_lib.check_number(config, "optim.momentum", low=0, high=1, high_inclusive=False)
    try:
      preprocess.parse(model.preprocess)
      layer_geometry(config)
    except ValueError as error:
      raise ConfigError(f"Invalid SDPC config: {error}.") from None

  def init_state(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> SDPCState:
    del steps_per_epoch
    layers = layer_geometry(config)
    keys = jax.random.split(
        jax.random.fold_in(jax.random.key(config.seed), _INIT_STREAM), len(layers))
    dictionaries = tuple(
        dictionary_lib.init_dictionary(key, layer) for key, layer in zip(keys, layers))
    opt_states = tuple(optimizer.init(atoms)
                       for optimizer, atoms in zip(_optimizers(config), dictionaries))
    return SDPCState(step=jnp.zeros((), jnp.int32), dictionaries=dictionaries,
                     opt_states=opt_states, layers=layers)

  def make_train_step(self, config: ml_collections.ConfigDict, steps_per_epoch: int):
    del steps_per_epoch
    return functools.partial(
        train_step, layers=layer_geometry(config), settings=inference_settings(config),
        optimizers=_optimizers(config), power_iterations=config.model.power_iterations,
        preprocess_steps=preprocess.parse(config.model.preprocess))

  def grid_shape(self, config: ml_collections.ConfigDict) -> tuple[int, int]:
    return (_GRID_ROWS_PER_LAYER * len(config.model.atoms), _GRID_COLUMNS)

  def fixed_latents(self, config: ml_collections.ConfigDict, num: int) -> Any:
    """Returns a placeholder: the atom grid needs no inputs."""
    del config, num
    return jnp.zeros((), jnp.float32)

  def generate(self, state: SDPCState, latents: Any) -> jax.Array:
    del latents
    return atom_images(state.dictionaries, state.layers, _GRID_ROWS_PER_LAYER * _GRID_COLUMNS)


FAMILY = SDPCFamily()
