"""Convolutional dictionaries: analysis D (strided convolution), synthesis D^T, step sizes.

A dictionary is an array [k, k, C, K] (HWIO): K atoms of C x k x k. Analysis maps a layer input
[B, H, W, C] to [B, H', W', K] with a strided convolution without padding; synthesis is its exact
adjoint (the transposed convolution), obtained with jax.linear_transpose so that
<D x, g> = <x, D^T g> is exact up to rounding for every input size.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class LayerGeometry:
  """Static sizes of one layer: input [size, size, channels] -> codes [code_size, ..., atoms]."""

  input_size: int
  channels: int
  kernel_size: int
  stride: int
  atoms: int

  @property
  def code_size(self) -> int:
    return (self.input_size - self.kernel_size) // self.stride + 1


def make_geometry(
    image_size: int, image_channels: int, atoms: tuple[int, ...], kernel_sizes: tuple[int, ...],
    strides: tuple[int, ...],
) -> tuple[LayerGeometry, ...]:
  """Returns the geometry of each layer, chaining each layer's code size into the next input.

  Raises:
    ValueError: if the lists differ in length or a layer's input is smaller than its kernel.
  """
  if not len(atoms) == len(kernel_sizes) == len(strides) or not atoms:
    raise ValueError(
        f"atoms {atoms}, kernel sizes {kernel_sizes} and strides {strides} must be non-empty and "
        "of the same length (one entry per layer)")
  layers = []
  size, channels = image_size, image_channels
  for index, (num_atoms, kernel, stride) in enumerate(zip(atoms, kernel_sizes, strides)):
    if size < kernel:
      raise ValueError(
          f"layer {index + 1} gets a {size}x{size} input, smaller than its {kernel}x{kernel} "
          "kernel; use larger images, smaller kernels or smaller strides")
    layer = LayerGeometry(size, channels, kernel, stride, num_atoms)
    layers.append(layer)
    size, channels = layer.code_size, num_atoms
  return tuple(layers)


def analyze(inputs: jax.Array, dictionary: jax.Array, stride: int) -> jax.Array:
  """Returns D x: the correlation of `inputs` [B, H, W, C] with every atom, without padding."""
  return jax.lax.conv_general_dilated(
      inputs, dictionary, window_strides=(stride, stride), padding="VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)


def synthesize(codes: jax.Array, dictionary: jax.Array, stride: int, input_size: int) -> jax.Array:
  """Returns D^T codes: the [B, input_size, input_size, C] input that the codes predict."""
  shape = (codes.shape[0], input_size, input_size, dictionary.shape[2])
  transpose = jax.linear_transpose(
      lambda x: analyze(x, dictionary, stride), jax.ShapeDtypeStruct(shape, codes.dtype))
  (inputs,) = transpose(codes)
  return inputs


def max_eigenvalue(
    dictionary: jax.Array, layer: LayerGeometry, iterations: int, key: jax.Array) -> jax.Array:
  """Estimates lambda_max(D^T D) = ||D||^2 on inputs of the layer's size by power iteration."""
  vector = jax.random.normal(key, (1, layer.input_size, layer.input_size, layer.channels))

  def body(_, vector):
    vector = vector / jnp.linalg.norm(vector)
    return synthesize(analyze(vector, dictionary, layer.stride), dictionary, layer.stride,
                      layer.input_size)

  vector = jax.lax.fori_loop(0, iterations, body, vector)
  vector = vector / jnp.linalg.norm(vector)
  return jnp.sum(analyze(vector, dictionary, layer.stride) ** 2)


def init_dictionary(key: jax.Array, layer: LayerGeometry) -> jax.Array:
  """Returns Gaussian noise atoms [k, k, C, K], each rescaled to unit L2 norm."""
  shape = (layer.kernel_size, layer.kernel_size, layer.channels, layer.atoms)
  return normalize_atoms(jax.random.normal(key, shape))


def normalize_atoms(dictionary: jax.Array) -> jax.Array:
  """Rescales every atom (all of k x k x C for one output channel) to unit L2 norm."""
  norms = jnp.sqrt(jnp.sum(dictionary**2, axis=(0, 1, 2), keepdims=True))
  return dictionary / jnp.maximum(norms, 1e-12)


def explicit_matrix(dictionary: np.ndarray, layer: LayerGeometry) -> np.ndarray:
  """Returns D^T as a dense [input values, code values] matrix (for tests on tiny sizes)."""
  num_codes = layer.code_size**2 * layer.atoms
  basis = jnp.eye(num_codes).reshape(num_codes, layer.code_size, layer.code_size, layer.atoms)
  columns = synthesize(basis, jnp.asarray(dictionary), layer.stride, layer.input_size)
  return np.asarray(columns).reshape(num_codes, -1).T


def receptive_fields(
    dictionaries: tuple[jax.Array, ...], layers: tuple[LayerGeometry, ...], level: int,
) -> jax.Array:
  """Returns the atoms of layer `level` (1-based) back-projected to pixels, [K, R, R, C].

  A one-hot code at one position of layer `level` is mapped down through D_level^T, ..., D_1^T.
  The field size is R = k_1 + (k_2 - 1) s_1 + (k_3 - 1) s_1 s_2 + ...
  """
  # Input size of each layer for a 1x1 code map at the top, from the top layer down.
  sizes = [1]
  for layer in reversed(layers[:level]):
    sizes.append((sizes[-1] - 1) * layer.stride + layer.kernel_size)
  sizes = sizes[::-1]  # sizes[i] is the input size of layer i + 1; sizes[level] is 1

  num_atoms = layers[level - 1].atoms
  values = jnp.eye(num_atoms).reshape(num_atoms, 1, 1, num_atoms)
  for index in reversed(range(level)):
    values = synthesize(values, dictionaries[index], layers[index].stride, sizes[index])
  return values
