"""BigGAN-lite networks (Brock et al., 2019, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis"): residual G and D with spectral normalisation and one self-attention block.

The generator takes a latent z [B, latent_dim] and, when conditional, class labels [B]. z is split
into one chunk for the 4x4 input layer and one chunk per up-block (the hierarchical latent). Each
block's BatchNorm layers get their gains and biases from a linear map of (its z chunk, the shared
class embedding). The discriminator adds a projection term: the inner product of a class
embedding with the pooled features.

Spectral normalisation divides each weight by an estimate of its largest singular value. The
estimate's left singular vector is an `SpectralVector` variable, kept with the BatchNorm
statistics, so it is saved in checkpoints. Each forward pass with `update_sn=True` runs one power
iteration and stores the new vector. Inference passes (`update_sn=False`) reuse the stored
vector unchanged.
"""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
from flax import nnx

_EPSILON = 1e-12


class SpectralVector(nnx.Variable):
  """The power-iteration estimate u [out_features] of a weight's left singular vector."""


def _normalize(x: jax.Array) -> jax.Array:
  return x / (jnp.linalg.norm(x) + _EPSILON)


def spectral_norm_estimate(
    matrix: jax.Array, u: jax.Array, *, iterate: bool
) -> tuple[jax.Array, jax.Array]:
  """Returns (sigma, u'): an estimate of the largest singular value of `matrix` [m, n], and u'.

  With `iterate`, one power iteration runs: v = normalize(W^T u), u' = normalize(W v), and sigma
  = u'^T W v. Without it, u' = u and sigma = u^T W normalize(W^T u). No gradient flows through
  the vectors, as in the paper's reference implementation.
  """
  u = jax.lax.stop_gradient(u)
  v = _normalize(matrix.T @ u)
  if iterate:
    u = _normalize(matrix @ v)
  u = jax.lax.stop_gradient(u)
  v = jax.lax.stop_gradient(v)
  return u @ matrix @ v, u


class _SpectralWeight(nnx.Module):
  """A kernel [..., in, out] that is divided by its spectral norm each time it is read."""

  def __init__(self, shape: tuple[int, ...], rngs: nnx.Rngs):
    # Orthogonal initialisation, as in BigGAN: the [in, out] matrix of the kernel has
    # orthonormal columns (or rows, when in < out).
    self.kernel = nnx.Param(nnx.initializers.orthogonal()(rngs.params(), shape))
    u = jax.random.normal(rngs.params(), (shape[-1],))
    self.sn_u = SpectralVector(_normalize(u))

  def normalized_kernel(self, update_sn: bool) -> jax.Array:
    kernel = self.kernel[...]
    # Rows of `matrix` are the output filters, so sigma is the largest singular value of the
    # layer's linear map whatever the kernel layout.
    matrix = kernel.reshape(-1, kernel.shape[-1]).T
    sigma, u = spectral_norm_estimate(matrix, self.sn_u[...], iterate=update_sn)
    if update_sn:
      self.sn_u[...] = u
    return kernel / sigma


class SNConv(nnx.Module):
  """A stride-1 "same" convolution with a spectrally normalised kernel, on NHWC arrays."""

  def __init__(self, in_features: int, out_features: int, kernel_size: int, rngs: nnx.Rngs):
    self.weight = _SpectralWeight((kernel_size, kernel_size, in_features, out_features), rngs)
    self.bias = nnx.Param(jnp.zeros((out_features,)))

  def __call__(self, x: jax.Array, update_sn: bool) -> jax.Array:
    kernel = self.weight.normalized_kernel(update_sn)
    y = jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + self.bias[...]


class SNDense(nnx.Module):
  """A dense layer with a spectrally normalised kernel [in, out]."""

  def __init__(self, in_features: int, out_features: int, rngs: nnx.Rngs, use_bias: bool = True):
    self.weight = _SpectralWeight((in_features, out_features), rngs)
    self.bias = nnx.Param(jnp.zeros((out_features,))) if use_bias else None

  def __call__(self, x: jax.Array, update_sn: bool) -> jax.Array:
    y = x @ self.weight.normalized_kernel(update_sn)
    return y if self.bias is None else y + self.bias[...]


def dot_product_attention(query: jax.Array, key: jax.Array, value: jax.Array) -> jax.Array:
  """Returns softmax(query key^T) value for query [B, N, d], key [B, M, d], value [B, M, e].

  As in SAGAN (Zhang et al., 2019), the logits are not scaled by 1/sqrt(d).
  """
  logits = jnp.einsum("bnd,bmd->bnm", query, key)
  weights = jax.nn.softmax(logits, axis=-1)
  return jnp.einsum("bnm,bme->bne", weights, value)


# Pooling uses reduce_window, not a reshape that splits H and W: under an explicitly sharded mesh,
# jax 0.10 rejects such a reshape of a batch-sharded array without an output sharding.
def _max_pool_2x2(x: jax.Array) -> jax.Array:
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


class SelfAttention(nnx.Module):
  """SAGAN self-attention: x + gamma * attention(x), with gamma starting at 0.

  Queries come from every position, keys and values from 2x2 max-pooled positions (as in
  BigGAN), which cuts the cost by 4. Query and key have C/8 channels, the value C/2.
  """

  def __init__(self, channels: int, rngs: nnx.Rngs):
    self.query = SNConv(channels, max(channels // 8, 1), 1, rngs)
    self.key = SNConv(channels, max(channels // 8, 1), 1, rngs)
    self.value = SNConv(channels, max(channels // 2, 1), 1, rngs)
    self.output = SNConv(max(channels // 2, 1), channels, 1, rngs)
    self.gamma = nnx.Param(jnp.zeros(()))

  def __call__(self, x: jax.Array, update_sn: bool) -> jax.Array:
    batch, height, width, _ = x.shape
    query = self.query(x, update_sn).reshape(batch, height * width, -1)
    key = _max_pool_2x2(self.key(x, update_sn)).reshape(batch, height * width // 4, -1)
    value = _max_pool_2x2(self.value(x, update_sn)).reshape(batch, height * width // 4, -1)
    attended = dot_product_attention(query, key, value).reshape(batch, height, width, -1)
    return x + self.gamma[...] * self.output(attended, update_sn)


class ConditionalBatchNorm(nnx.Module):
  """BatchNorm whose gain (1 + g) and bias b are linear maps of a conditioning vector [B, k].

  In training mode it normalises with the statistics of the batch (the global batch, because the
  batch axis is sharded, not split) and updates the running statistics. In inference mode it uses
  the running statistics.
  """

  def __init__(self, channels: int, cond_features: int, rngs: nnx.Rngs, epsilon: float):
    self.norm = nnx.BatchNorm(
        channels, use_scale=False, use_bias=False, epsilon=epsilon, momentum=0.9, rngs=rngs)
    self.gain = SNDense(cond_features, channels, rngs, use_bias=False)
    self.bias = SNDense(cond_features, channels, rngs, use_bias=False)

  def __call__(self, x: jax.Array, cond: jax.Array, train: bool) -> jax.Array:
    normalized = self.norm(x, use_running_average=not train)
    gain = 1.0 + self.gain(cond, train)[:, None, None, :]
    bias = self.bias(cond, train)[:, None, None, :]
    return normalized * gain + bias


def _upsample_2x(x: jax.Array) -> jax.Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _avg_pool_2x2(x: jax.Array) -> jax.Array:
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  return total / 4.0


class GBlock(nnx.Module):
  """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus upsample-conv1x1 on the shortcut."""

  def __init__(self, in_ch: int, out_ch: int, cond_features: int, rngs: nnx.Rngs, eps: float):
    self.bn1 = ConditionalBatchNorm(in_ch, cond_features, rngs, eps)
    self.conv1 = SNConv(in_ch, out_ch, 3, rngs)
    self.bn2 = ConditionalBatchNorm(out_ch, cond_features, rngs, eps)
    self.conv2 = SNConv(out_ch, out_ch, 3, rngs)
    self.shortcut = SNConv(in_ch, out_ch, 1, rngs)

  def __call__(self, x: jax.Array, cond: jax.Array, train: bool) -> jax.Array:
    h = _upsample_2x(jax.nn.relu(self.bn1(x, cond, train)))
    h = self.conv1(h, train)
    h = self.conv2(jax.nn.relu(self.bn2(h, cond, train)), train)
    return h + self.shortcut(_upsample_2x(x), train)


class DBlock(nnx.Module):
  """ReLU-conv3x3-ReLU-conv3x3-avgpool, plus conv1x1-avgpool on the shortcut.

  The first block of D skips the leading ReLU, so the image is not clipped at 0, and pools its
  shortcut before the 1x1 convolution, which is the same map at a quarter of the cost.
  """

  def __init__(self, in_ch: int, out_ch: int, rngs: nnx.Rngs, *, downsample: bool, first: bool):
    self.conv1 = SNConv(in_ch, out_ch, 3, rngs)
    self.conv2 = SNConv(out_ch, out_ch, 3, rngs)
    self.shortcut = SNConv(in_ch, out_ch, 1, rngs) if (in_ch != out_ch or downsample) else None
    self.downsample = downsample
    self.first = first

  def __call__(self, x: jax.Array, update_sn: bool) -> jax.Array:
    h = x if self.first else jax.nn.relu(x)
    h = self.conv2(jax.nn.relu(self.conv1(h, update_sn)), update_sn)
    if self.downsample:
      h = _avg_pool_2x2(h)
    shortcut = x
    if self.first and self.downsample:
      shortcut = self.shortcut(_avg_pool_2x2(x), update_sn)
    elif self.shortcut is not None:
      shortcut = self.shortcut(x, update_sn)
      if self.downsample:
        shortcut = _avg_pool_2x2(shortcut)
    return h + shortcut


@dataclasses.dataclass(frozen=True)
class Architecture:
  """Shape settings of one G/D pair.

  Attributes:
    image_size: output resolution; a power of 2 of at least 8.
    width: base channel count; block i of G has width * g_multipliers[i] output channels.
    g_multipliers: one per up-block of G, log2(image_size / 4) of them.
    d_multipliers: one per block of D, log2(image_size / 4) + 1 of them. All but the last
      halve the resolution, down to 4x4.
    attention_resolution: resolution after which a self-attention block runs in G and before
      which one runs in D (0 = none).
    latent_dim: length of z; split into len(g_multipliers) + 1 chunks of near-equal size.
    num_classes: 0 for an unconditional model.
    embed_dim: length of the shared class embedding of G (ignored when unconditional).
    bn_epsilon: epsilon of every BatchNorm in G.
  """

  image_size: int
  width: int
  g_multipliers: tuple[int, ...]
  d_multipliers: tuple[int, ...]
  attention_resolution: int
  latent_dim: int
  num_classes: int
  embed_dim: int
  bn_epsilon: float = 1e-5


def latent_chunks(latent_dim: int, num_chunks: int) -> list[int]:
  """Returns the chunk lengths of z: near-equal, the first ones longer by 1 where needed."""
  base, extra = divmod(latent_dim, num_chunks)
  return [base + (1 if i < extra else 0) for i in range(num_chunks)]


class Generator(nnx.Module):
  """z [B, latent_dim] (and labels [B]) -> images [B, s, s, 3] in [-1, 1]."""

  def __init__(self, arch: Architecture, rngs: nnx.Rngs):
    self.arch = arch
    self.chunks = latent_chunks(arch.latent_dim, len(arch.g_multipliers) + 1)
    channels = [arch.width * m for m in arch.g_multipliers]
    embed_dim = arch.embed_dim if arch.num_classes else 0
    # The shared class embedding [num_classes, embed_dim], read as one_hot(labels) @ embedding:
    # a gather with batch-sharded indices needs an explicit output sharding, a matmul does not.
    self.embedding = nnx.Param(
        jax.random.normal(rngs.params(), (arch.num_classes, embed_dim))) if arch.num_classes else None
    self.input = SNDense(self.chunks[0], 4 * 4 * channels[0], rngs)

    blocks, attention = [], None
    in_ch, resolution = channels[0], 4
    for index, out_ch in enumerate(channels):
      blocks.append(GBlock(in_ch, out_ch, self.chunks[index + 1] + embed_dim, rngs,
                           arch.bn_epsilon))
      in_ch, resolution = out_ch, resolution * 2
      if resolution == arch.attention_resolution:
        attention = (index, SelfAttention(out_ch, rngs))
    self.blocks = nnx.List(blocks)
    self.attention_after = attention[0] if attention else -1
    self.attention = attention[1] if attention else None
    self.output_bn = nnx.BatchNorm(in_ch, epsilon=arch.bn_epsilon, momentum=0.9, rngs=rngs)
    self.output = SNConv(in_ch, 3, 3, rngs)

  def __call__(self, z: jax.Array, labels: jax.Array | None = None, *,
               train: bool) -> jax.Array:
    splits = list(itertools.accumulate(self.chunks))[:-1]
    z_chunks = jnp.split(z, splits, axis=-1)
    if self.embedding is not None:
      class_embedding = jax.nn.one_hot(labels, self.embedding.shape[0]) @ self.embedding[...]
      conds = [jnp.concatenate([chunk, class_embedding], axis=-1) for chunk in z_chunks[1:]]
    else:
      conds = z_chunks[1:]

    batch = z.shape[0]
    h = self.input(z_chunks[0], train).reshape(batch, 4, 4, -1)
    for index, block in enumerate(self.blocks):
      h = block(h, conds[index], train)
      if index == self.attention_after:
        h = self.attention(h, train)
    h = jax.nn.relu(self.output_bn(h, use_running_average=not train))
    return jnp.tanh(self.output(h, train))


class Discriminator(nnx.Module):
  """images [B, s, s, 3] (and labels [B]) -> logits [B]; hinge-loss scores, not probabilities."""

  def __init__(self, arch: Architecture, rngs: nnx.Rngs):
    channels = [arch.width * m for m in arch.d_multipliers]
    blocks, attention = [], None
    in_ch, resolution = 3, arch.image_size
    for index, out_ch in enumerate(channels):
      if resolution == arch.attention_resolution and attention is None and index > 0:
        attention = (index, SelfAttention(in_ch, rngs))
      downsample = index < len(channels) - 1
      blocks.append(DBlock(in_ch, out_ch, rngs, downsample=downsample, first=index == 0))
      in_ch = out_ch
      resolution = resolution // 2 if downsample else resolution
    self.blocks = nnx.List(blocks)
    self.attention_before = attention[0] if attention else -1
    self.attention = attention[1] if attention else None
    self.linear = SNDense(in_ch, 1, rngs)
    self.embed = SNDense(arch.num_classes, in_ch, rngs, use_bias=False) if arch.num_classes else None

  def __call__(self, images: jax.Array, labels: jax.Array | None = None, *,
               update_sn: bool) -> jax.Array:
    h = images
    for index, block in enumerate(self.blocks):
      if index == self.attention_before:
        h = self.attention(h, update_sn)
      h = block(h, update_sn)
    features = jax.nn.relu(h).sum(axis=(1, 2))
    logits = self.linear(features, update_sn)[:, 0]
    if self.embed is not None:
      # Projection discriminator (Miyato and Koyama, 2018): the class embedding is a row of a
      # spectrally normalised [num_classes, C] matrix, here a one-hot times an SNDense kernel.
      one_hot = jax.nn.one_hot(labels, self.embed.weight.kernel.shape[0])
      logits = logits + jnp.sum(self.embed(one_hot, update_sn) * features, axis=-1)
    return logits


def build(arch: Architecture, key: jax.Array) -> tuple[Generator, Discriminator]:
  """Creates G and D with weights drawn from `key`."""
  g_key, d_key = jax.random.split(key)
  return Generator(arch, nnx.Rngs(g_key)), Discriminator(arch, nnx.Rngs(d_key))
