"""Tests for the PyTorch-style convolutions and the Glorot-normal initializer in models/layers.py.

The references are the stock `jax.lax` convolutions and a float64 NumPy loop that follows the
definition of PyTorch's ConvTranspose2d.
"""

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxgan.models import layers

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")

# (kernel, stride, padding, output_padding) of the transposed convolutions under test.
_TRANSPOSE_CASES = [(4, 2, 1, 0), (5, 2, 2, 1), (3, 1, 1, 0)]

# (kernel, stride, padding) of the convolutions under test. (4, 1, 2) is w7's third D block, the
# one the layer pads with an explicit `jnp.pad`.
_CONV_CASES = [(4, 2, 1), (4, 1, 2), (3, 1, 1), (3, 2, 0)]


def _random_normal(key: int, shape: tuple[int, ...]) -> jax.Array:
  return jax.random.normal(jax.random.key(key), shape, jnp.float32)


def _stock_conv_transpose(x, kernel, stride, padding, output_padding):
  """Computes PyTorch's ConvTranspose2d with `lax.conv_transpose`, from a [k, k, in, out] kernel.

  `lax.conv_transpose` pads the stride-dilated input, so PyTorch's padding p becomes k - 1 - p on
  the low side and k - 1 - p + output_padding on the high side. With transpose_kernel=True it
  expects the kernel of the forward convolution (out -> in channels) and flips it itself.
  """
  size = kernel.shape[0]
  low = size - 1 - padding
  high = size - 1 - padding + output_padding
  forward_kernel = jnp.swapaxes(kernel, 2, 3)
  return lax.conv_transpose(
      x, forward_kernel, (stride, stride), ((low, high), (low, high)),
      dimension_numbers=_DIMENSION_NUMBERS, transpose_kernel=True)


def _numpy_conv_transpose(x, kernel, stride, padding, output_padding):
  """Computes ConvTranspose2d by its definition in float64: each input pixel scatters x * kernel."""
  x = np.asarray(x, np.float64)
  kernel = np.asarray(kernel, np.float64)
  batch, height, width, _ = x.shape
  size, _, _, out_channels = kernel.shape
  out_height = (height - 1) * stride - 2 * padding + size + output_padding
  out_width = (width - 1) * stride - 2 * padding + size + output_padding
  out = np.zeros((batch, out_height, out_width, out_channels))
  for n in range(batch):
    for i in range(height):
      for j in range(width):
        for a in range(size):
          for b in range(size):
            row = i * stride - padding + a
            col = j * stride - padding + b
            if 0 <= row < out_height and 0 <= col < out_width:
              out[n, row, col] += x[n, i, j] @ kernel[a, b]
  return out


def _layer_conv_transpose(x, kernel, stride, padding, output_padding):
  """Runs `layers.conv_transpose` the way `layers.ConvTranspose` calls it."""
  size = kernel.shape[0]
  height, width = x.shape[1:3]
  output_hw = ((height - 1) * stride - 2 * padding + size + output_padding,
               (width - 1) * stride - 2 * padding + size + output_padding)
  return layers.conv_transpose(
      x, jnp.swapaxes(kernel, 2, 3), stride,
      ((padding, padding - output_padding), (padding, padding - output_padding)), output_hw)


def _transpose_layer(kernel, stride, padding, output_padding, in_features=3, out_features=5):
  return layers.ConvTranspose(
      in_features, out_features, kernel, stride, padding, output_padding, rngs=nnx.Rngs(0))


# conv_transpose and ConvTranspose


@pytest.mark.parametrize("kernel_size, stride, padding, output_padding", _TRANSPOSE_CASES)
def test_conv_transpose_matches_stock_forward(kernel_size, stride, padding, output_padding):
  x = _random_normal(1, (2, 6, 7, 3))
  kernel = _random_normal(2, (kernel_size, kernel_size, 3, 5))

  result = _layer_conv_transpose(x, kernel, stride, padding, output_padding)
  expected = _stock_conv_transpose(x, kernel, stride, padding, output_padding)

  assert result.shape == expected.shape
  np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel_size, stride, padding, output_padding", _TRANSPOSE_CASES)
def test_conv_transpose_layer_matches_stock(kernel_size, stride, padding, output_padding):
  layer = _transpose_layer(kernel_size, stride, padding, output_padding)
  layer.bias[...] = _random_normal(3, (5,))
  x = _random_normal(1, (2, 6, 7, 3))

  result = layer(x)
  expected = _stock_conv_transpose(x, layer.kernel[...], stride, padding, output_padding)
  expected = expected + layer.bias[...]

  assert result.shape == expected.shape
  np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel_size, stride, padding, output_padding", _TRANSPOSE_CASES)
def test_conv_transpose_matches_stock_gradients(kernel_size, stride, padding, output_padding):
  x = _random_normal(1, (2, 6, 7, 3))
  kernel = _random_normal(2, (kernel_size, kernel_size, 3, 5))
  out_shape = _stock_conv_transpose(x, kernel, stride, padding, output_padding).shape
  weights = _random_normal(3, out_shape)

  def functional(conv_transpose):
    # A random linear functional of the output, so its gradient is the VJP of `weights`.
    return lambda x, kernel: jnp.sum(
        weights * conv_transpose(x, kernel, stride, padding, output_padding))

  grad_x, grad_kernel = jax.grad(functional(_layer_conv_transpose), argnums=(0, 1))(x, kernel)
  expected_x, expected_kernel = jax.grad(
      functional(_stock_conv_transpose), argnums=(0, 1))(x, kernel)

  np.testing.assert_allclose(grad_x, expected_x, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(grad_kernel, expected_kernel, rtol=1e-4, atol=1e-4)


def test_conv_transpose_layer_gradients_under_jit():
  layer = _transpose_layer(4, 2, 1, 0)
  x = _random_normal(1, (2, 5, 5, 3))
  weights = _random_normal(3, (2, 10, 10, 5))

  def loss(layer, x):
    return jnp.sum(weights * layer(x))

  grads = nnx.jit(nnx.grad(loss))(layer, x)
  expected_kernel = jax.grad(
      lambda kernel: jnp.sum(weights * _stock_conv_transpose(x, kernel, 2, 1, 0)))(
          layer.kernel[...])

  np.testing.assert_allclose(grads.kernel[...], expected_kernel, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(grads.bias[...], weights.sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kernel_size, stride, padding, output_padding", [(4, 2, 1, 0), (5, 2, 2, 1)])
def test_conv_transpose_matches_numpy_definition(kernel_size, stride, padding, output_padding):
  x = _random_normal(1, (2, 3, 4, 2))
  kernel = _random_normal(2, (kernel_size, kernel_size, 2, 3))

  result = _layer_conv_transpose(x, kernel, stride, padding, output_padding)
  expected = _numpy_conv_transpose(x, kernel, stride, padding, output_padding)

  assert result.shape == expected.shape
  np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


def test_stock_conv_transpose_matches_numpy_definition():
  # Checks the padding conversion of the stock reference used by the tests above.
  x = _random_normal(1, (2, 3, 4, 2))
  kernel = _random_normal(2, (5, 5, 2, 3))

  result = _stock_conv_transpose(x, kernel, 2, 2, 1)
  expected = _numpy_conv_transpose(x, kernel, 2, 2, 1)

  assert result.shape == expected.shape
  np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("in_size, kernel_size, stride, padding, output_padding, out_size", [
    (8, 4, 2, 1, 0, 16),
    (8, 5, 2, 2, 1, 16),
    (8, 3, 1, 1, 0, 8),
    (7, 4, 2, 0, 0, 16),
    (5, 3, 2, 1, 1, 10),
    (4, 4, 2, 1, 0, 8),
])
def test_conv_transpose_layer_output_size(
    in_size, kernel_size, stride, padding, output_padding, out_size):
  layer = _transpose_layer(kernel_size, stride, padding, output_padding)

  result = layer(jnp.zeros((1, in_size, in_size, 3)))

  assert result.shape == (1, out_size, out_size, 5)


def test_conv_transpose_layer_rejects_output_padding_of_stride():
  with pytest.raises(ValueError, match="output_padding"):
    _transpose_layer(4, 2, 1, 2)


# Conv


def _stock_conv(x, kernel, stride, padding):
  return lax.conv_general_dilated(
      x, kernel, (stride, stride), ((padding, padding), (padding, padding)),
      dimension_numbers=_DIMENSION_NUMBERS)


@pytest.mark.parametrize("kernel_size, stride, padding", _CONV_CASES)
def test_conv_layer_matches_stock_forward(kernel_size, stride, padding):
  layer = layers.Conv(3, 5, kernel_size, stride, padding, rngs=nnx.Rngs(0))
  layer.bias[...] = _random_normal(3, (5,))
  x = _random_normal(1, (2, 9, 8, 3))

  result = layer(x)
  expected = _stock_conv(x, layer.kernel[...], stride, padding) + layer.bias[...]

  assert result.shape == expected.shape
  np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel_size, stride, padding", _CONV_CASES)
def test_conv_layer_matches_stock_gradients(kernel_size, stride, padding):
  layer = layers.Conv(3, 5, kernel_size, stride, padding, rngs=nnx.Rngs(0))
  x = _random_normal(1, (2, 9, 8, 3))
  weights = _random_normal(3, _stock_conv(x, layer.kernel[...], stride, padding).shape)

  def loss(layer, x):
    return jnp.sum(weights * layer(x))

  grads, grad_x = nnx.grad(loss, argnums=(0, 1))(layer, x)
  expected_kernel, expected_x = jax.grad(
      lambda kernel, x: jnp.sum(weights * _stock_conv(x, kernel, stride, padding)),
      argnums=(0, 1))(layer.kernel[...], x)

  np.testing.assert_allclose(grads.kernel[...], expected_kernel, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(grad_x, expected_x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("in_size, out_size", [(32, 9), (16, 5), (8, 3)])
def test_conv_layer_padding_two_grows_map(in_size, out_size):
  # w7's third D block: 4x4, stride 1, padding 2 maps s/4 to s/4 + 1.
  layer = layers.Conv(3, 4, 4, 1, 2, rngs=nnx.Rngs(0))

  result = layer(jnp.zeros((1, in_size // 4, in_size // 4, 3)))

  assert result.shape == (1, out_size, out_size, 4)


# Formulations: every one must give the stock values and gradients.


@pytest.fixture
def restore_formulations():
  conv, transpose = layers._conv_formulation, layers._transpose_formulation  # pylint: disable=protected-access
  yield
  layers.set_conv_formulation(conv)
  layers.set_transpose_formulation(transpose)


def _values_and_gradients(function, x, kernel, weights):
  """Returns function(x, kernel) and the gradients of sum(weights * function(x, kernel))."""
  grads = jax.grad(lambda x, kernel: jnp.sum(weights * function(x, kernel)), argnums=(0, 1))(
      x, kernel)
  return (function(x, kernel), *grads)


@pytest.mark.parametrize("formulation", sorted(layers.CONV_FORMULATIONS))
@pytest.mark.parametrize("kernel_size, stride, padding", _CONV_CASES)
def test_conv_formulation_matches_stock(formulation, kernel_size, stride, padding):
  x = _random_normal(1, (2, 9, 8, 3))
  kernel = _random_normal(2, (kernel_size, kernel_size, 3, 5))
  weights = _random_normal(3, _stock_conv(x, kernel, stride, padding).shape)
  pads = ((padding, padding), (padding, padding))

  result = _values_and_gradients(
      lambda x, k: layers.CONV_FORMULATIONS[formulation](x, k, stride, pads), x, kernel, weights)
  expected = _values_and_gradients(
      lambda x, k: _stock_conv(x, k, stride, padding), x, kernel, weights)

  for name, value, reference in zip(("output", "grad_x", "grad_kernel"), result, expected):
    assert value.shape == reference.shape, name
    np.testing.assert_allclose(value, reference, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("transpose_formulation, conv_formulation",
                         [("adjoint", "patches"), ("phases", "xla")])
@pytest.mark.parametrize("kernel_size, stride, padding, output_padding",
                         [*_TRANSPOSE_CASES, (3, 2, 0, 0), (4, 3, 1, 1)])
def test_transpose_formulation_matches_stock(
    restore_formulations, transpose_formulation, conv_formulation, kernel_size, stride, padding,
    output_padding):
  layers.set_conv_formulation(conv_formulation)
  layers.set_transpose_formulation(transpose_formulation)
  x = _random_normal(1, (2, 6, 7, 3))
  kernel = _random_normal(2, (kernel_size, kernel_size, 3, 5))
  weights = _random_normal(
      3, _stock_conv_transpose(x, kernel, stride, padding, output_padding).shape)

  result = _values_and_gradients(
      lambda x, k: _layer_conv_transpose(x, k, stride, padding, output_padding), x, kernel,
      weights)
  expected = _values_and_gradients(
      lambda x, k: _stock_conv_transpose(x, k, stride, padding, output_padding), x, kernel,
      weights)

  for name, value, reference in zip(("output", "grad_x", "grad_kernel"), result, expected):
    assert value.shape == reference.shape, name
    np.testing.assert_allclose(value, reference, rtol=1e-4, atol=1e-4, err_msg=name)


def test_set_formulation_rejects_unknown(restore_formulations):
  with pytest.raises(ValueError, match="unknown convolution formulation 'fft'"):
    layers.set_conv_formulation("fft")
  with pytest.raises(ValueError, match="unknown transposed convolution formulation 'fft'"):
    layers.set_transpose_formulation("fft")


# glorot_normal


def test_glorot_normal_std():
  # fan_in = fan_out = 4 * 4 * 256, so the std is sqrt(2 / 8192) = 1/64.
  kernel = layers.glorot_normal()(jax.random.key(0), (4, 4, 256, 256), jnp.float32)
  values = np.asarray(kernel, np.float64)

  assert abs(values.mean()) < 0.01 / 64
  assert values.std() == pytest.approx(1 / 64, rel=0.01)


def test_glorot_normal_not_truncated():
  kernel = layers.glorot_normal()(jax.random.key(0), (4, 4, 256, 256), jnp.float32)
  standardized = np.abs(np.asarray(kernel, np.float64)) * 64

  # An untruncated normal puts 4.55% of its mass beyond 2 std and 0.27% beyond 3 std.
  assert np.mean(standardized > 2) == pytest.approx(0.0455, abs=0.002)
  assert np.mean(standardized > 3) == pytest.approx(0.0027, abs=0.0005)


def test_glorot_normal_fans_of_dense_kernel():
  # A [fan_in, fan_out] kernel of 1000 x 3000 has std sqrt(2 / 4000).
  kernel = layers.glorot_normal()(jax.random.key(1), (1000, 3000), jnp.float32)

  assert np.asarray(kernel, np.float64).std() == pytest.approx(np.sqrt(2 / 4000), rel=0.01)
