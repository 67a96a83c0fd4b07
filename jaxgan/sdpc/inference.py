"""SDPC inference: codes that minimise the energy, by block proximal-gradient steps (ISTA/FISTA).

Each iteration updates the layers bottom-up, so layer i+1 reads the new codes of layer i. Layer i
takes a gradient step on its part of the smooth energy, divided by k_fb^(i-1):

    grad_i = D_i (D_i^T gamma_i - gamma_{i-1}) + k_fb (gamma_i - D_{i+1}^T gamma_{i+1})

(the second term only below the top layer), followed by the non-negative soft threshold
ReLU(u - eta_i lambda_i). With step eta_i = 1 / (lambda_max(D_i^T D_i) + k_fb) below the top
and 1 / lambda_max(D_L^T D_L) at the top, each ISTA step never increases the energy. FISTA adds
momentum and converges faster but is not monotone.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxgan.sdpc import dictionary as dictionary_lib


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
  """Inference settings; all fields are static under jit."""

  lambdas: tuple[float, ...]  # L1 weight of each layer's codes
  k_fb: float  # feedback strength; 0 = independent stacked Lasso problems
  solver: str = "fista"  # "ista" or "fista"
  max_iterations: int = 1000
  # An image stops updating once every layer's reconstruction loss changed by less than this
  # fraction in one iteration (after min_iterations). 0 = always run max_iterations.
  tolerance: float = 1e-3
  min_iterations: int = 3


class InferenceResult(NamedTuple):
  codes: tuple[jax.Array, ...]  # gamma_i, [B, H_i, W_i, K_i], all >= 0
  iterations: jax.Array  # int32 [B]: iterations each image ran before it converged


def step_sizes(
    dictionaries: tuple[jax.Array, ...],
    layers: tuple[dictionary_lib.LayerGeometry, ...],
    k_fb: float,
    power_iterations: int,
    key: jax.Array,
) -> tuple[jax.Array, ...]:
  """Returns eta_i = 1 / L_i, where L_i is the Lipschitz constant of layer i's gradient."""
  etas = []
  for index, (atoms, layer) in enumerate(zip(dictionaries, layers)):
    lipschitz = dictionary_lib.max_eigenvalue(
        atoms, layer, power_iterations, jax.random.fold_in(key, index))
    if index < len(layers) - 1:
      lipschitz = lipschitz + k_fb
    etas.append(1.0 / lipschitz)
  return tuple(etas)


def reconstruction_losses(
    image: jax.Array,
    codes: tuple[jax.Array, ...],
    dictionaries: tuple[jax.Array, ...],
    layers: tuple[dictionary_lib.LayerGeometry, ...],
) -> tuple[jax.Array, ...]:
  """Returns 1/2 ||gamma_{i-1} - D_i^T gamma_i||^2 per image, [B], for each layer i."""
  losses = []
  below = image
  for code, atoms, layer in zip(codes, dictionaries, layers):
    prediction = dictionary_lib.synthesize(code, atoms, layer.stride, layer.input_size)
    losses.append(0.5 * jnp.sum((below - prediction) ** 2, axis=(1, 2, 3)))
    below = code
  return tuple(losses)


def energy(
    image: jax.Array,
    codes: tuple[jax.Array, ...],
    dictionaries: tuple[jax.Array, ...],
    layers: tuple[dictionary_lib.LayerGeometry, ...],
    settings: InferenceSettings,
) -> jax.Array:
  """Returns the SDPC energy E of each image, [B]."""
  losses = reconstruction_losses(image, codes, dictionaries, layers)
  total = jnp.zeros(image.shape[0], image.dtype)
  for index, (loss, code) in enumerate(zip(losses, codes)):
    sparsity = settings.lambdas[index] * jnp.sum(jnp.abs(code), axis=(1, 2, 3))
    total = total + settings.k_fb**index * (loss + sparsity)
  return total


def zero_codes(batch: int, layers: tuple[dictionary_lib.LayerGeometry, ...], dtype=jnp.float32):
  return tuple(
      jnp.zeros((batch, layer.code_size, layer.code_size, layer.atoms), dtype) for layer in layers)


def _layer_update(index, point, codes, below, dictionaries, layers, settings, eta):
  """Takes one proximal-gradient step of layer `index` from `point` (its codes or FISTA point)."""
  layer, atoms = layers[index], dictionaries[index]
  residual = dictionary_lib.synthesize(point, atoms, layer.stride, layer.input_size) - below
  gradient = dictionary_lib.analyze(residual, atoms, layer.stride)
  if index < len(layers) - 1 and settings.k_fb:
    above = layers[index + 1]
    prediction = dictionary_lib.synthesize(
        codes[index + 1], dictionaries[index + 1], above.stride, above.input_size)
    gradient = gradient + settings.k_fb * (point - prediction)
  return jax.nn.relu(point - eta * gradient - eta * settings.lambdas[index])


def infer(
    image: jax.Array,
    dictionaries: tuple[jax.Array, ...],
    layers: tuple[dictionary_lib.LayerGeometry, ...],
    settings: InferenceSettings,
    etas: tuple[jax.Array, ...],
    initial_codes: tuple[jax.Array, ...] | None = None,
) -> InferenceResult:
  """Infers the codes of a batch of layer-1 inputs [B, H, W, C] (a jit-able `lax.while_loop`).

  Each image converges on its own: once its relative loss changes are all below the tolerance,
  its codes stay fixed while the others go on, so the codes of an image do not depend on the
  rest of its batch. The loop ends when every image has converged or at max_iterations.
  """
  if settings.solver not in ("ista", "fista"):
    raise ValueError(f"unknown SDPC solver {settings.solver!r}; use 'ista' or 'fista'")
  batch = image.shape[0]
  codes = initial_codes if initial_codes is not None else zero_codes(batch, layers, image.dtype)
  losses = reconstruction_losses(image, codes, dictionaries, layers)
  initial = dict(
      codes=codes, points=codes, t=jnp.ones((), image.dtype), iteration=jnp.zeros((), jnp.int32),
      iterations=jnp.zeros(batch, jnp.int32), converged=jnp.zeros(batch, bool), losses=losses)

  def keep_converged(converged, old, new):
    return jnp.where(converged[:, None, None, None], old, new)

  def body(carry):
    old_codes, converged = carry["codes"], carry["converged"]
    new_codes = list(old_codes)
    for index in range(len(layers)):
      below = image if index == 0 else new_codes[index - 1]
      point = carry["points"][index] if settings.solver == "fista" else old_codes[index]
      update = _layer_update(
          index, point, new_codes, below, dictionaries, layers, settings, etas[index])
      new_codes[index] = keep_converged(converged, old_codes[index], update)

    t_next = (1.0 + jnp.sqrt(1.0 + 4.0 * carry["t"] ** 2)) / 2.0
    momentum = (carry["t"] - 1.0) / t_next
    points = tuple(new + momentum * (new - old) for new, old in zip(new_codes, old_codes))
    points = tuple(keep_converged(converged, old, point)
                   for old, point in zip(old_codes, points))

    iteration = carry["iteration"] + 1
    new_losses = reconstruction_losses(image, tuple(new_codes), dictionaries, layers)
    small_change = jnp.ones(batch, bool)
    for old_loss, new_loss in zip(carry["losses"], new_losses):
      change = jnp.abs(new_loss - old_loss) / jnp.maximum(old_loss, 1e-12)
      small_change = small_change & (change < settings.tolerance)
    now_converged = converged | (small_change & (iteration >= settings.min_iterations))
    iterations = jnp.where(converged, carry["iterations"], iteration)
    return dict(codes=tuple(new_codes), points=points, t=t_next, iteration=iteration,
                iterations=iterations, converged=now_converged, losses=new_losses)

  def keep_going(carry):
    return (carry["iteration"] < settings.max_iterations) & ~jnp.all(carry["converged"])

  final = jax.lax.while_loop(keep_going, body, initial)
  return InferenceResult(codes=final["codes"], iterations=final["iterations"])


def back_project(
    code: jax.Array,
    level: int,
    dictionaries: tuple[jax.Array, ...],
    layers: tuple[dictionary_lib.LayerGeometry, ...],
) -> jax.Array:
  """Maps codes of layer `level` (1-based) down to pixels: D_1^T ... D_level^T gamma_level."""
  values = code
  for index in reversed(range(level)):
    layer = layers[index]
    values = dictionary_lib.synthesize(values, dictionaries[index], layer.stride, layer.input_size)
  return values


def infer_unrolled(
    image: jax.Array,
    dictionaries: tuple[jax.Array, ...],
    layers: tuple[dictionary_lib.LayerGeometry, ...],
    settings: InferenceSettings,
    etas: tuple[jax.Array | float, ...],
    steps: int,
) -> tuple[jax.Array, ...]:
  """Runs exactly `steps` FISTA iterations from zero codes and returns the codes; differentiable.

  Unlike `infer`, which stops early in a `lax.while_loop` that reverse-mode differentiation
  cannot go through, the iterations are unrolled, each rematerialised in the backward pass, so
  gradients flow to the image (and the dictionaries) at the memory cost of one iteration's codes
  per step. They are unrolled in Python rather than in a `lax.scan`: inside a loop body XLA:CPU
  (jaxlib 0.10.2) leaves convolution gradients in layouts that run below 1 GFLOP/s, the cause
  of a 14x slower BigGAN step that `families/biggan.py` describes.
  """
  codes = zero_codes(image.shape[0], layers, image.dtype)

  @jax.checkpoint
  def iteration(carry):
    old_codes, points, t = carry
    new_codes = list(old_codes)
    for index in range(len(layers)):
      below = image if index == 0 else new_codes[index - 1]
      new_codes[index] = _layer_update(
          index, points[index], new_codes, below, dictionaries, layers, settings, etas[index])
    t_next = (1.0 + jnp.sqrt(1.0 + 4.0 * t**2)) / 2.0
    momentum = (t - 1.0) / t_next
    points = tuple(new + momentum * (new - old) for new, old in zip(new_codes, old_codes))
    return tuple(new_codes), points, t_next

  carry = (codes, codes, jnp.ones((), image.dtype))
  for _ in range(steps):
    carry = iteration(carry)
  return carry[0]
