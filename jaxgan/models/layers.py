"""Layers shared by every model family: PyTorch-style convolutions with explicit padding.

The reference experiments were written in PyTorch, so these layers take PyTorch's (kernel, stride,
padding, output_padding) arguments and produce the same output sizes, on NHWC arrays.

`conv_transpose` exists because of XLA:CPU. The gradient of `lax.conv_transpose` (what Flax's
`ConvTranspose` uses) lowers to a kernel-dilated, reversed convolution that XLA:CPU (jaxlib 0.10)
runs in a generic loop at a few GFLOP/s, which made a 128x128 DCGAN step tens of times slower than
PyTorch. Here the transposed convolution is defined as the adjoint of a strided convolution, and its
gradients are written with `jax.custom_vjp` as ordinary strided-convolution passes, which XLA runs
with its fast convolution kernels on every backend.

Each convolution runs through `_conv`, which applies the formulation chosen in one place
(`set_conv_formulation`, default "xla"): an XLA convolution, or patch extraction followed by one
matrix product, which XLA:CPU runs faster for the wide layers at the cost of more memory. Transposed convolutions are chosen
the same way (`set_transpose_formulation`, default "adjoint"). All formulations compute the same
function, within float32 rounding.
"""

import functools
from typing import Sequence

import jax
from jax import lax
import jax.numpy as jnp
from flax import nnx

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def glorot_normal() -> nnx.Initializer:
  """Returns N(0, 2 / (fan_in + fan_out)), not truncated (PyTorch's `xavier_normal_`)."""
  return nnx.initializers.variance_scaling(1.0, "fan_avg", "normal")


def truncated_normal(std: float = 0.02) -> nnx.Initializer:
  """Returns N(0, std^2) redrawn beyond 2 std, as TensorFlow's `truncated_normal_initializer`.

  The samples lie in (-2 std, 2 std) and their standard deviation is about 0.88 std.
  """
  return nnx.initializers.truncated_normal(stddev=std, lower=-2.0, upper=2.0)


INITIALIZERS = {"glorot_normal": glorot_normal, "truncated_normal": truncated_normal}


def make_initializer(name: str) -> nnx.Initializer:
  """Returns the weight initializer named by the config key model.init."""
  if name not in INITIALIZERS:
    raise ValueError(f"unknown initializer {name!r}; known: {sorted(INITIALIZERS)}")
  return INITIALIZERS[name]()


def _explicit_padding(x, kernel, padding):
  # A convolution padded by more than "same" padding (total padding > kernel size - 1, as in w7's
  # 4x4, padding 2 block) gets its padding from an explicit `jnp.pad`. With the padding inside the
  # convolution, XLA:CPU (jaxlib 0.10) rewrites its kernel gradient into a reversed convolution that
  # runs at about 2 GFLOP/s, 28x slower. Other convolutions keep the padding inside, where it is
  # faster than a separate pad.
  kernel_h, kernel_w = kernel.shape[:2]
  (top, bottom), (left, right) = padding
  if top + bottom > kernel_h - 1 or left + right > kernel_w - 1:
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    padding = ((0, 0), (0, 0))
  return x, padding


def conv_xla(x: jax.Array, kernel: jax.Array, stride: int,
             padding: Sequence[tuple[int, int]]) -> jax.Array:
  """Computes the convolution with `lax.conv_general_dilated` (XLA's convolution kernels)."""
  x, padding = _explicit_padding(x, kernel, padding)
  return lax.conv_general_dilated(
      x, kernel, (stride, stride), padding, dimension_numbers=_DIMENSION_NUMBERS)


def conv_patches(x: jax.Array, kernel: jax.Array, stride: int,
                 padding: Sequence[tuple[int, int]]) -> jax.Array:
  """Computes the convolution as patch extraction followed by one matrix product.

  The patches are kh * kw strided slices of the padded input, concatenated on the channel axis in
  the (row, column, channel) order of `kernel.reshape(-1, C_out)`. JAX differentiates the slices
  and the dot, so both gradients are matrix products too; the input gradient adds the patch
  gradients back with pads. bfloat16 inputs are multiplied with float32 accumulation.
  """
  kernel_h, kernel_w, in_channels, out_channels = kernel.shape
  (top, bottom), (left, right) = padding
  # lax.pad, unlike jnp.pad, takes the negative padding of a transposed convolution's adjoint.
  x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (top, bottom, 0), (left, right, 0), (0, 0, 0)))
  _, height, width, _ = x.shape
  out_h = (height - kernel_h) // stride + 1
  out_w = (width - kernel_w) // stride + 1
  columns = [
      x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride, :]
      for i in range(kernel_h) for j in range(kernel_w)
  ]
  patches = jnp.concatenate(columns, axis=-1)
  matrix = kernel.reshape(kernel_h * kernel_w * in_channels, out_channels)
  y = jnp.dot(patches, matrix, preferred_element_type=jnp.promote_types(x.dtype, jnp.float32))
  return y.astype(jnp.result_type(x, kernel))


# Convolutions with fewer input or output channels than this stay XLA convolutions under "auto":
# with 3 channels (RGB layers) the patch matrix or the product is too thin to pay for itself.
AUTO_MIN_CHANNELS = 16


def conv_auto(x: jax.Array, kernel: jax.Array, stride: int,
              padding: Sequence[tuple[int, int]]) -> jax.Array:
  """Computes the convolution with the formulation that was fastest on CPU for its shape.

  On the CPU backend, convolutions with at least AUTO_MIN_CHANNELS input and output channels use
  `conv_patches`. In interleaved measurements on a 2-core AVX-512 AMD EPYC (jaxlib 0.10.2, see
  docs/benchmarks.md), it ran forward plus both gradients 1.3-1.8x faster than XLA's convolution,
  in float32 and bfloat16, on two layers: w7's stride-1 D block and the strided convolution
  inside G's last transposed convolution. Other backends, and the RGB layers, keep `conv_xla`.
  """
  in_channels, out_channels = kernel.shape[2:]
  if jax.default_backend() == "cpu" and min(in_channels, out_channels) >= AUTO_MIN_CHANNELS:
    return conv_patches(x, kernel, stride, padding)
  return conv_xla(x, kernel, stride, padding)


CONV_FORMULATIONS = {"auto": conv_auto, "xla": conv_xla, "patches": conv_patches}
# NOTE: "auto" is not the default because its patch matrices raise the memory of a w7 128x128,
# batch 32 train step from 1.2 to 5.7 GiB of XLA temporaries, and its gain on a whole step is not
# measured yet.
_conv_formulation = "xla"


def set_conv_formulation(name: str) -> None:
  """Selects the formulation of every convolution traced from now on (a `CONV_FORMULATIONS` key).

  Functions that were already jitted keep the formulation they were traced with.
  """
  global _conv_formulation
  if name not in CONV_FORMULATIONS:
    raise ValueError(f"unknown convolution formulation {name!r}; known: {sorted(CONV_FORMULATIONS)}")
  _conv_formulation = name


def _conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Sequence[tuple[int, int]]):
  return CONV_FORMULATIONS[_conv_formulation](x, kernel, stride, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_transpose_adjoint(
    x: jax.Array,
    kernel: jax.Array,
    stride: int,
    padding: tuple[tuple[int, int], tuple[int, int]],
    output_hw: tuple[int, int],
) -> jax.Array:
  """Applies the transpose (adjoint) of a strided convolution, as PyTorch's ConvTranspose2d does.

  The forward pass is JAX's transpose of `_conv` with respect to its input, and the gradients are
  a strided convolution and the kernel gradient of one (see `_conv_transpose_backward`).
  Arguments and result are those of `conv_transpose`.
  """
  out_shape = (x.shape[0], *output_hw, kernel.shape[2])
  _, transpose = jax.vjp(lambda y: _conv(y, kernel, stride, padding), jnp.zeros(out_shape, x.dtype))
  return transpose(x)[0]


def _conv_transpose_forward(x, kernel, stride, padding, output_hw):
  return conv_transpose_adjoint(x, kernel, stride, padding, output_hw), (x, kernel)


def _conv_transpose_backward(stride, padding, output_hw, residuals, grad_out):
  x, kernel = residuals

  # The output is linear in x with adjoint conv(., kernel): the input gradient is a plain
  # strided convolution of the output gradient.
  grad_x = _conv(grad_out, kernel, stride, padding)

  # <grad_out, conv_transpose(x, kernel)> = <conv(grad_out, kernel), x>, so the kernel gradient is
  # the kernel gradient of that strided convolution with x as its output cotangent.
  _, kernel_vjp = jax.vjp(lambda k: _conv(grad_out, k, stride, padding), kernel)
  (grad_kernel,) = kernel_vjp(x.astype(grad_out.dtype))
  return grad_x.astype(x.dtype), grad_kernel.astype(kernel.dtype)


conv_transpose_adjoint.defvjp(_conv_transpose_forward, _conv_transpose_backward)


def conv_transpose_phases(
    x: jax.Array,
    kernel: jax.Array,
    stride: int,
    padding: tuple[tuple[int, int], tuple[int, int]],
    output_hw: tuple[int, int],
) -> jax.Array:
  """Applies the same transposed convolution as stride^2 stride-1 convolutions of the input.

  Output row o takes input row i through kernel row t when i * stride + t = o + top. Writing
  o + top = q * stride + r with 0 <= r < stride, the taps are t = r + j * stride and i = q - j,
  so each phase r is a stride-1 convolution of x with the flipped sub-kernel kernel[r::stride].
  The phases are computed on a grid of q from 0 and interleaved, and the output is the window
  that starts at row `top`. JAX differentiates the stride-1 convolutions, so no pass works on a
  stride-dilated array. Arguments and result are those of `conv_transpose`.
  """
  (top, _), (left, _) = padding
  height, width = x.shape[1:3]
  kernel_h, kernel_w = kernel.shape[:2]
  rows = -(-(output_hw[0] + top) // stride)
  cols = -(-(output_hw[1] + left) // stride)
  phase_rows = []
  for r in range(stride):
    phase_row = []
    for c in range(stride):
      taps_h = len(range(r, kernel_h, stride))
      taps_w = len(range(c, kernel_w, stride))
      # [taps_h, taps_w, C_in, C_out], flipped so that a correlation applies tap j to x[q - j].
      sub_kernel = jnp.swapaxes(kernel[r::stride, c::stride][::-1, ::-1], 2, 3)
      # Pads x by taps - 1 rows before, so q - j >= 0 reads zeros, and to `rows` outputs after.
      phase_padding = ((taps_h - 1, rows - height), (taps_w - 1, cols - width))
      phase_row.append(_conv(x, sub_kernel, 1, phase_padding))
    phase_rows.append(jnp.stack(phase_row, axis=3))
  # [N, rows, stride (r), cols, stride (c), C_out] -> [N, rows * stride, cols * stride, C_out].
  grid = jnp.stack(phase_rows, axis=2)
  grid = grid.reshape(x.shape[0], rows * stride, cols * stride, kernel.shape[2])
  return grid[:, top:top + output_hw[0], left:left + output_hw[1]]


TRANSPOSE_FORMULATIONS = {"adjoint": conv_transpose_adjoint, "phases": conv_transpose_phases}
_transpose_formulation = "adjoint"


def set_transpose_formulation(name: str) -> None:
  """Selects the formulation of every transposed convolution traced from now on.

  `name` is a key of `TRANSPOSE_FORMULATIONS`. Functions that were already jitted keep the
  formulation they were traced with.
  """
  global _transpose_formulation
  if name not in TRANSPOSE_FORMULATIONS:
    raise ValueError(f"unknown transposed convolution formulation {name!r}; known: "
                     f"{sorted(TRANSPOSE_FORMULATIONS)}")
  _transpose_formulation = name


def conv_transpose(
    x: jax.Array,
    kernel: jax.Array,
    stride: int,
    padding: tuple[tuple[int, int], tuple[int, int]],
    output_hw: tuple[int, int],
) -> jax.Array:
  """Applies the transpose (adjoint) of a strided convolution, as PyTorch's ConvTranspose2d does.

  Args:
    x: [N, H, W, C_in].
    kernel: [kh, kw, C_out, C_in]: the kernel of the strided convolution that maps the output
      space (C_out channels) back to the input space (C_in channels).
    stride: the stride of that convolution.
    padding: its ((top, bottom), (left, right)) padding.
    output_hw: the output height and width; the convolution must map them back to (H, W).

  Returns:
    [N, output_hw[0], output_hw[1], C_out], computed by the selected formulation.
  """
  return TRANSPOSE_FORMULATIONS[_transpose_formulation](x, kernel, stride, padding, output_hw)


def _kernel_and_bias(kernel_size, in_features, out_features, use_bias, kernel_init, rngs):
  """Creates a float32 kernel [k, k, in, out] and a zero bias (or None)."""
  shape = (kernel_size, kernel_size, in_features, out_features)
  kernel = nnx.Param(kernel_init(rngs.params(), shape, jnp.float32))
  bias = nnx.Param(jnp.zeros((out_features,), jnp.float32)) if use_bias else None
  return kernel, bias


class ConvTranspose(nnx.Module):
  """PyTorch `ConvTranspose2d` semantics on NHWC inputs: out = (in - 1) * stride - 2 * padding
  + kernel_size + output_padding.

  The kernel is stored as [k, k, in_features, out_features], like Flax's `ConvTranspose`.
  """

  def __init__(
      self,
      in_features: int,
      out_features: int,
      kernel_size: int,
      stride: int,
      padding: int,
      output_padding: int = 0,
      *,
      use_bias: bool = True,
      kernel_init: nnx.Initializer = glorot_normal(),
      dtype: jnp.dtype | None = None,
      rngs: nnx.Rngs,
  ):
    if not 0 <= output_padding < stride:
      raise ValueError(f"output_padding must be in [0, stride), got {output_padding}")
    if output_padding > padding:
      raise ValueError(f"output_padding ({output_padding}) must not exceed padding ({padding})")
    self.kernel, self.bias = _kernel_and_bias(
        kernel_size, in_features, out_features, use_bias, kernel_init, rngs)
    self.kernel_size = kernel_size
    self.stride = stride
    self.padding = padding
    self.output_padding = output_padding
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    dtype = self.dtype or x.dtype
    k, s, p, op = self.kernel_size, self.stride, self.padding, self.output_padding
    height, width = x.shape[1], x.shape[2]
    output_hw = ((height - 1) * s - 2 * p + k + op, (width - 1) * s - 2 * p + k + op)

    # The adjoint convolution pads the bottom and right edges by `output_padding` less, so that it
    # maps the larger output back onto exactly (height, width).
    padding = ((p, p - op), (p, p - op))
    kernel = jnp.swapaxes(self.kernel[...], 2, 3).astype(dtype)
    y = conv_transpose(x.astype(dtype), kernel, s, padding, output_hw)
    if self.bias is not None:
      y = y + self.bias[...].astype(dtype)
    return y


class Conv(nnx.Module):
  """PyTorch `Conv2d` semantics on NHWC inputs, with symmetric integer padding."""

  def __init__(
      self,
      in_features: int,
      out_features: int,
      kernel_size: int,
      stride: int,
      padding: int,
      *,
      use_bias: bool = True,
      kernel_init: nnx.Initializer = glorot_normal(),
      dtype: jnp.dtype | None = None,
      rngs: nnx.Rngs,
  ):
    self.kernel, self.bias = _kernel_and_bias(
        kernel_size, in_features, out_features, use_bias, kernel_init, rngs)
    self.stride = stride
    self.padding = padding
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    dtype = self.dtype or x.dtype
    p = self.padding
    y = _conv(x.astype(dtype), self.kernel[...].astype(dtype), self.stride, ((p, p), (p, p)))
    if self.bias is not None:
      y = y + self.bias[...].astype(dtype)
    return y
