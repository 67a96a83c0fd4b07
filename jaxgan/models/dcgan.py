"""DCGAN generators and discriminators (NHWC, images in [-1, 1]).

"w7" is a DCGAN for square images whose size is a multiple of 8. With the default width c = 64:

  G: z [B, latent_dim] -> dense to 8c * (s/8)^2 -> LeakyReLU -> reshape to (s/8, s/8, 8c)
     -> 3 x [transposed conv 4x4, stride 2, padding 1 -> BatchNorm -> LeakyReLU] (4c, 2c, c
     channels) -> conv 3x3, stride 1, padding 1 to 3 channels -> tanh.
  D: x [B, s, s, 3] -> 4 x [conv 4x4 -> LeakyReLU -> BatchNorm] with c, 2c, 4c, 8c channels,
     strides 2, 2, 1, 2 and paddings 1, 1, 2, 1 (no BatchNorm in the first block; BatchNorm comes
     after the activation) -> flatten -> dense to one logit.

The stride-1 block's padding of 2 grows the map from s/4 to s/4 + 1, and the next block brings it to
s/8. Every LeakyReLU has slope 0.2. Weights are Glorot-normal (not truncated) by default, or
truncated normal with std 0.02 (model.init); biases are 0.

"reproduct" is a public TensorFlow DCGAN for Simpsons faces, for sizes that are multiples of 16:

  G: z -> dense to 16c * (s/16)^2 -> LeakyReLU -> reshape -> 4 x [transposed conv 5x5, stride 2,
     padding 2, output_padding 1 -> BatchNorm -> LeakyReLU] (8c, 4c, 2c, c channels)
     -> transposed conv 5x5, stride 1, padding 2 to 3 channels -> tanh.
  D: x -> 5 x [conv 5x5, padding 2 -> BatchNorm -> LeakyReLU] with c, 2c, 4c, 8c, 16c channels and
     strides 2, 2, 2, 1, 2 -> flatten -> dense to one logit.

"reproduct4" is the lab's variant of it: 4x4 transposed convs (stride 2, padding 1) and a final
conv 3x3, stride 1, padding 1 in G, and 4x4 convs (padding 1) in D's stride-2 blocks.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.config_checks import dcgan as dcgan_checks
from jaxgan.models import layers

LEAKY_SLOPE = 0.2


def batch_norm(
    num_features: int, epsilon: float, rngs: nnx.Rngs, dtype: jnp.dtype = jnp.float32
) -> nnx.BatchNorm:
  """Returns a BatchNorm with PyTorch's default momentum (running = 0.9 running + 0.1 batch).

  `dtype` is the output dtype. Flax (0.12) computes the batch statistics in float32 whatever the
  input dtype, and the running statistics and scale and bias parameters stay float32.

  NOTE: PyTorch updates the running variance with the unbiased batch variance and Flax with the
  biased one. With at least 32 x 16 x 16 values per channel the two differ by under 0.02%.
  """
  return nnx.BatchNorm(num_features, momentum=0.9, epsilon=epsilon, dtype=dtype, rngs=rngs)


class _Generator(nnx.Module):
  """Forward pass of the generators: a dense layer to a start_size x start_size x start_channels
  grid, upsampling blocks (transposed conv, BatchNorm, LeakyReLU), then to_rgb and tanh.

  Subclasses create dense, start_size, start_channels, up_convs, up_norms and to_rgb.
  """

  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    x = nnx.leaky_relu(self.dense(z), LEAKY_SLOPE)
    x = x.reshape(z.shape[0], self.start_size, self.start_size, self.start_channels)
    for conv, norm in zip(self.up_convs, self.up_norms):
      x = nnx.leaky_relu(norm(conv(x), use_running_average=not train), LEAKY_SLOPE)
    return jnp.tanh(self.to_rgb(x)).astype(jnp.float32)


class _Discriminator(nnx.Module):
  """Logits of the discriminators: `dense` on the flattened output of the last block of the
  subclass's `features`."""

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = self.features(x, train=train)[-1]
    return self.dense(x.reshape(x.shape[0], -1))[:, 0].astype(jnp.float32)


def _logit_layer(num_inputs: int, kernel_init, dtype: jnp.dtype, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(num_inputs, 1, kernel_init=kernel_init, bias_init=nnx.initializers.zeros,
                    dtype=dtype, rngs=rngs)


class W7Generator(_Generator):
  """The w7 generator: z [B, latent_dim] -> images [B, s, s, 3] in (-1, 1)."""

  def __init__(
      self, image_size: int, latent_dim: int, bn_epsilon: float, width: int = 64, *,
      init: str = "glorot_normal", dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
    if image_size % 8:
      raise ValueError(f"w7 needs an image size that is a multiple of 8, got {image_size}")
    self.start_size = image_size // 8
    self.start_channels = 8 * width
    init = layers.make_initializer(init)
    self.dense = nnx.Linear(
        latent_dim, self.start_channels * self.start_size**2, kernel_init=init,
        bias_init=nnx.initializers.zeros, dtype=dtype, rngs=rngs)
    channels = [8 * width, 4 * width, 2 * width, width]
    self.up_convs = nnx.List([
        layers.ConvTranspose(c_in, c_out, 4, 2, 1, kernel_init=init, dtype=dtype, rngs=rngs)
        for c_in, c_out in zip(channels[:-1], channels[1:])
    ])
    self.up_norms = nnx.List([batch_norm(c, bn_epsilon, rngs, dtype) for c in channels[1:]])
    self.to_rgb = layers.Conv(width, 3, 3, 1, 1, kernel_init=init, dtype=dtype, rngs=rngs)


class W7Discriminator(_Discriminator):
  """The w7 discriminator: images [B, s, s, 3] -> logits [B]."""

  # (channels as a multiple of the width, stride, padding, BatchNorm) per block; kernels are 4x4.
  BLOCKS = ((1, 2, 1, False), (2, 2, 1, True), (4, 1, 2, True), (8, 2, 1, True))

  def __init__(
      self, image_size: int, bn_epsilon: float, width: int = 64, *, init: str = "glorot_normal",
      dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
    if image_size % 8:
      raise ValueError(f"w7 needs an image size that is a multiple of 8, got {image_size}")
    kernel_init = layers.make_initializer(init)
    c_in = 3
    convs, norms = [], []
    for multiple, stride, padding, use_norm in self.BLOCKS:
      c_out = multiple * width
      convs.append(layers.Conv(
          c_in, c_out, 4, stride, padding, kernel_init=kernel_init, dtype=dtype, rngs=rngs))
      norms.append(batch_norm(c_out, bn_epsilon, rngs, dtype) if use_norm else None)
      c_in = c_out
    self.convs = nnx.List(convs)
    self.norms = nnx.List(norms)
    self.dense = _logit_layer(c_in * (image_size // 8)**2, kernel_init, dtype, rngs)

  def features(self, x: jax.Array, *, train: bool) -> list[jax.Array]:
    """Returns the output of every block, for shape checks and feature-based analysis."""
    outputs = []
    for conv, norm in zip(self.convs, self.norms):
      x = nnx.leaky_relu(conv(x), LEAKY_SLOPE)
      if norm is not None:
        x = norm(x, use_running_average=not train)
      outputs.append(x)
    return outputs


def _check_multiple_of_16(arch: str, image_size: int) -> None:
  if image_size % 16:
    raise ValueError(f"{arch} needs an image size that is a multiple of 16, got {image_size}")


class ReproductGenerator(_Generator):
  """The reproduct generator: z [B, latent_dim] -> images [B, s, s, 3] in (-1, 1).

  Class attributes set the variant: the kernel, padding and output_padding of the four upsampling
  transposed convs, and whether the last layer is a 5x5 transposed conv or a 3x3 conv.
  """

  ARCH = "reproduct"
  UP_KERNEL, UP_PADDING, UP_OUTPUT_PADDING = 5, 2, 1
  FINAL_TRANSPOSED = True

  def __init__(
      self, image_size: int, latent_dim: int, bn_epsilon: float, width: int = 64, *,
      init: str = "glorot_normal", dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
    _check_multiple_of_16(self.ARCH, image_size)
    kernel_init = layers.make_initializer(init)
    self.start_size = image_size // 16
    self.start_channels = 16 * width
    self.dense = nnx.Linear(
        latent_dim, self.start_channels * self.start_size**2, kernel_init=kernel_init,
        bias_init=nnx.initializers.zeros, dtype=dtype, rngs=rngs)
    channels = [16 * width, 8 * width, 4 * width, 2 * width, width]
    self.up_convs = nnx.List([
        layers.ConvTranspose(
            c_in, c_out, self.UP_KERNEL, 2, self.UP_PADDING, self.UP_OUTPUT_PADDING,
            kernel_init=kernel_init, dtype=dtype, rngs=rngs)
        for c_in, c_out in zip(channels[:-1], channels[1:])
    ])
    self.up_norms = nnx.List([batch_norm(c, bn_epsilon, rngs, dtype) for c in channels[1:]])
    if self.FINAL_TRANSPOSED:
      self.to_rgb = layers.ConvTranspose(
          width, 3, 5, 1, 2, kernel_init=kernel_init, dtype=dtype, rngs=rngs)
    else:
      self.to_rgb = layers.Conv(width, 3, 3, 1, 1, kernel_init=kernel_init, dtype=dtype, rngs=rngs)


class Reproduct4Generator(ReproductGenerator):
  """The reproduct4 generator: 4x4 transposed convs (stride 2, padding 1), then a 3x3 conv."""

  ARCH = "reproduct4"
  UP_KERNEL, UP_PADDING, UP_OUTPUT_PADDING = 4, 1, 0
  FINAL_TRANSPOSED = False


class ReproductDiscriminator(_Discriminator):
  """The reproduct discriminator: images [B, s, s, 3] -> logits [B].

  Every block is conv -> BatchNorm -> LeakyReLU, the first one included.
  """

  ARCH = "reproduct"
  # (channels as a multiple of the width, kernel, stride, padding) per block.
  BLOCKS = ((1, 5, 2, 2), (2, 5, 2, 2), (4, 5, 2, 2), (8, 5, 1, 2), (16, 5, 2, 2))

  def __init__(
      self, image_size: int, bn_epsilon: float, width: int = 64, *, init: str = "glorot_normal",
      dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
    _check_multiple_of_16(self.ARCH, image_size)
    kernel_init = layers.make_initializer(init)
    c_in = 3
    convs, norms = [], []
    for multiple, kernel, stride, padding in self.BLOCKS:
      c_out = multiple * width
      convs.append(layers.Conv(
          c_in, c_out, kernel, stride, padding, kernel_init=kernel_init, dtype=dtype, rngs=rngs))
      norms.append(batch_norm(c_out, bn_epsilon, rngs, dtype))
      c_in = c_out
    self.convs = nnx.List(convs)
    self.norms = nnx.List(norms)
    self.dense = _logit_layer(c_in * (image_size // 16)**2, kernel_init, dtype, rngs)

  def features(self, x: jax.Array, *, train: bool) -> list[jax.Array]:
    """Returns the output of every block, for shape checks and feature-based analysis."""
    outputs = []
    for conv, norm in zip(self.convs, self.norms):
      x = nnx.leaky_relu(norm(conv(x), use_running_average=not train), LEAKY_SLOPE)
      outputs.append(x)
    return outputs


class Reproduct4Discriminator(ReproductDiscriminator):
  """The reproduct4 discriminator: 4x4 convs with padding 1 in the stride-2 blocks."""

  ARCH = "reproduct4"
  # The stride-1 block uses a 3x3 kernel with padding 1. This is a choice, not the lab's: a 4x4
  # stride-1 conv changes the size by 2 * padding - 3, which is odd, so no symmetric padding keeps
  # the size unchanged.
  BLOCKS = ((1, 4, 2, 1), (2, 4, 2, 1), (4, 4, 2, 1), (8, 3, 1, 1), (16, 4, 2, 1))


ARCHITECTURES = {
    "w7": (W7Generator, W7Discriminator),
    "reproduct": (ReproductGenerator, ReproductDiscriminator),
    "reproduct4": (Reproduct4Generator, Reproduct4Discriminator),
}

# Architectures whose image size must be a multiple of 16 (four stride-2 stages); the others need
# a multiple of 8. Defined with the config checks, which run before JAX is imported.
SIZE_MULTIPLE_16 = dcgan_checks.SIZE_MULTIPLE_16


def build(
    arch: str, image_size: int, latent_dim: int, bn_epsilon: float, width: int, key: jax.Array,
    init: str = "glorot_normal", dtype: str = "float32",
):
  """Builds (generator, discriminator) of a named architecture with initial weights from `key`.

  `init` names the weight initializer of every conv, transposed conv and dense layer
  ("glorot_normal" or "truncated_normal"); biases are always 0. `dtype` ("float32" or
  "bfloat16") is the compute dtype of every layer. Parameters and BatchNorm statistics are float32
  either way, and G's images and D's logits are returned as float32.
  """
  if arch not in ARCHITECTURES:
    raise ValueError(f"unknown DCGAN architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
  generator_cls, discriminator_cls = ARCHITECTURES[arch]
  g_key, d_key = jax.random.split(key)
  dtype = jnp.dtype(dtype)
  generator = generator_cls(
      image_size, latent_dim, bn_epsilon, width, init=init, dtype=dtype,
      rngs=nnx.Rngs(params=g_key))
  discriminator = discriminator_cls(
      image_size, bn_epsilon, width, init=init, dtype=dtype, rngs=nnx.Rngs(params=d_key))
  return generator, discriminator
