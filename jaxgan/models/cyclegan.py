"""CycleGAN networks (Zhu et al., 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks", appendix 7.2), NHWC, images in [-1, 1].

With base width w (64 in the paper) and n residual blocks (6 at 128x128, 9 at 256x256):

  ResNet generator: reflection pad 3, conv 7x7 to w -> 2 x [conv 3x3, stride 2, padding 1] (2w,
    4w) -> n x residual block [reflection pad 1, conv 3x3, IN, ReLU, reflection pad 1, conv 3x3,
    IN, plus the input] -> 2 x [transposed conv 3x3, stride 2, padding 1, output padding 1] (2w,
    w) -> reflection pad 3, conv 7x7 to 3 -> tanh. Every conv except the last is followed by
    instance norm (IN) and ReLU.
  70x70 PatchGAN discriminator: conv 4x4 stride 2 (w), LeakyReLU 0.2, then conv 4x4 with strides
    2, 2, 1 (2w, 4w, 8w), each followed by IN and LeakyReLU 0.2, then conv 4x4 stride 1 to one
    channel. All its convs use zero padding 1. Each output pixel scores one 70x70 input patch.

Instance norm has no scale or offset and eps 1e-5 (PyTorch's InstanceNorm2d defaults, which the
authors' code uses). Convs followed by it have no bias, because the norm subtracts it again.
Weights start from N(0, 0.02^2), as in the authors' code.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.models import layers

LEAKY_SLOPE = 0.2
INSTANCE_NORM_EPSILON = 1e-5
_INIT_STD = 0.02


def reflect_pad(x: jax.Array, padding: int) -> jax.Array:
  """Pads height and width of NHWC `x` by mirroring without repeating the edge pixel.

  This is PyTorch's ReflectionPad2d (NumPy's "reflect" mode): [a, b, c] padded by 1 is
  [b, a, b, c, b].
  """
  return jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")


def instance_norm(x: jax.Array, epsilon: float = INSTANCE_NORM_EPSILON) -> jax.Array:
  """Normalizes each image and channel over its height and width, with the biased variance."""
  mean = x.mean(axis=(1, 2), keepdims=True)
  variance = jnp.square(x - mean).mean(axis=(1, 2), keepdims=True)
  return (x - mean) * jax.lax.rsqrt(variance + epsilon)


def _conv(in_features, out_features, kernel_size, stride, padding, rngs, use_bias=False):
  return layers.Conv(
      in_features, out_features, kernel_size, stride, padding, use_bias=use_bias,
      kernel_init=nnx.initializers.normal(_INIT_STD), rngs=rngs)


class ResidualBlock(nnx.Module):
  """x + [reflection pad 1, conv 3x3, IN, ReLU, reflection pad 1, conv 3x3, IN](x)."""

  def __init__(self, channels: int, *, rngs: nnx.Rngs):
    self.conv1 = _conv(channels, channels, 3, 1, 0, rngs)
    self.conv2 = _conv(channels, channels, 3, 1, 0, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(instance_norm(self.conv1(reflect_pad(x, 1))))
    y = instance_norm(self.conv2(reflect_pad(y, 1)))
    return x + y


class ResnetGenerator(nnx.Module):
  """Maps images [B, s, s, 3] to images [B, s, s, 3] in (-1, 1); s must be a multiple of 4."""

  def __init__(self, width: int = 64, num_blocks: int = 9, *, rngs: nnx.Rngs):
    if width < 1 or num_blocks < 0:
      raise ValueError(f"need width >= 1 and num_blocks >= 0, got {width} and {num_blocks}")
    self.stem = _conv(3, width, 7, 1, 0, rngs)
    self.down = nnx.List([
        _conv(width, 2 * width, 3, 2, 1, rngs),
        _conv(2 * width, 4 * width, 3, 2, 1, rngs),
    ])
    self.blocks = nnx.List([ResidualBlock(4 * width, rngs=rngs) for _ in range(num_blocks)])
    init = nnx.initializers.normal(_INIT_STD)
    self.up = nnx.List([
        layers.ConvTranspose(4 * width, 2 * width, 3, 2, 1, 1, use_bias=False, kernel_init=init,
                             rngs=rngs),
        layers.ConvTranspose(2 * width, width, 3, 2, 1, 1, use_bias=False, kernel_init=init,
                             rngs=rngs),
    ])
    self.head = _conv(width, 3, 7, 1, 0, rngs, use_bias=True)

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.shape[1] % 4 or x.shape[2] % 4:
      raise ValueError(f"the ResNet generator needs sizes that are multiples of 4, got {x.shape}")
    x = jax.nn.relu(instance_norm(self.stem(reflect_pad(x, 3))))
    for conv in self.down:
      x = jax.nn.relu(instance_norm(conv(x)))
    for block in self.blocks:
      x = block(x)
    for conv in self.up:
      x = jax.nn.relu(instance_norm(conv(x)))
    return jnp.tanh(self.head(reflect_pad(x, 3)))


class PatchDiscriminator(nnx.Module):
  """Maps images [B, s, s, 3] to patch logits [B, s/8 - 2, s/8 - 2, 1] (s >= 24)."""

  # (kernel, stride) of each conv, input to output, for `receptive_field`.
  LAYOUT = ((4, 2), (4, 2), (4, 2), (4, 1), (4, 1))

  def __init__(self, width: int = 64, *, rngs: nnx.Rngs):
    channels = [3, width, 2 * width, 4 * width, 8 * width]
    self.convs = nnx.List([
        _conv(c_in, c_out, kernel, stride, 1, rngs, use_bias=index == 0)
        for index, ((kernel, stride), c_in, c_out)
        in enumerate(zip(self.LAYOUT[:-1], channels[:-1], channels[1:]))
    ])
    self.head = _conv(8 * width, 1, 4, 1, 1, rngs, use_bias=True)

  def __call__(self, x: jax.Array) -> jax.Array:
    for index, conv in enumerate(self.convs):
      x = conv(x)
      if index > 0:
        x = instance_norm(x)
      x = jax.nn.leaky_relu(x, LEAKY_SLOPE)
    return self.head(x)


def receptive_field(layout: tuple[tuple[int, int], ...]) -> int:
  """Returns the side in input pixels on which one output pixel of a conv stack depends."""
  field, jump = 1, 1
  for kernel, stride in layout:
    field += (kernel - 1) * jump
    jump *= stride
  return field


def build(width_g: int, num_blocks: int, width_d: int, key: jax.Array):
  """Returns (G, F, D_A, D_B): G maps A to B, F maps B to A, D_A scores A, D_B scores B."""
  keys = jax.random.split(key, 4)
  return (
      ResnetGenerator(width_g, num_blocks, rngs=nnx.Rngs(params=keys[0])),
      ResnetGenerator(width_g, num_blocks, rngs=nnx.Rngs(params=keys[1])),
      PatchDiscriminator(width_d, rngs=nnx.Rngs(params=keys[2])),
      PatchDiscriminator(width_d, rngs=nnx.Rngs(params=keys[3])),
  )
