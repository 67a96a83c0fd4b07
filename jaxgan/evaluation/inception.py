"""The FID Inception-v3 network in Flax NNX, and its pool3 features for FID and KID.

This is the network of the original TensorFlow FID code (the 2015-12-05 Inception graph, as
used by TTUR and TF-GAN), in the form pytorch-fid gives it. It differs from torchvision's
Inception-v3 in four places, all reproduced here:
  * the classifier has 1008 outputs, not 1000;
  * the average-pool branches of the A, C and first E blocks (Mixed_5b-d, Mixed_6b-e, Mixed_7b)
    divide by the number of pixels inside the image, not by 9 (TensorFlow's SAME padding);
  * the pool branch of the last E block (Mixed_7c) uses max pooling, not average pooling;
  * every BatchNorm uses epsilon 1e-3 and its stored statistics (inference mode).
FID uses the 2048 values after the final global average pool ("pool3").

Weights: an .npz file with pytorch-fid's state-dict names and shapes, for example
"Mixed_5b.branch1x1.conv.weight" [64, 192, 1, 1] (PyTorch's [out, in, kh, kw]),
"Mixed_5b.branch1x1.bn.running_var" [64] and "fc.weight" [1008, 2048]. tools/
convert_inception_weights.py writes it from pytorch-fid's .pth file. The file is found from an
explicit path, else from the JAXGAN_INCEPTION_WEIGHTS environment variable.

Resize: images of any size are resized to 299x299 by bilinear interpolation with half-pixel
centres and no antialiasing (`jax.image.resize(..., "bilinear", antialias=False)`), which matches
pytorch-fid's `F.interpolate(mode="bilinear", align_corners=False)`. Upsampling, as for GAN images
below 299 pixels, is the same with or without antialiasing.
"""

import hashlib
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxgan.errors import JaxganError
from jaxgan.evaluation import batching

ENV_VARIABLE = "JAXGAN_INCEPTION_WEIGHTS"
INPUT_SIZE = 299
FEATURE_SIZE = 2048
NUM_CLASSES = 1008
RESIZE_METHOD = "bilinear, half-pixel centres, no antialias, to 299x299"

# The weights as published by pytorch-fid. torch.hub file names end in the first hex digits of
# the file's SHA-256, which `torch.hub.load_state_dict_from_url(check_hash=True)` verifies.
PTH_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
           "pt_inception-2015-12-05-6726825d.pth")
PTH_SHA256_PREFIX = "6726825d"
# TODO: fill in the SHA-256 of the .npz that tools/convert_inception_weights.py writes from that
# .pth file. No copy of the .pth file was available to compute it.
NPZ_SHA256 = None


class InceptionWeightsError(JaxganError):
  """The Inception weights file is missing or does not match the network."""


class BasicConv(nnx.Module):
  """Convolution without bias, BatchNorm with stored statistics, ReLU."""

  def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], *,
               stride: int = 1, padding: tuple[int, int] = (0, 0), rngs: nnx.Rngs):
    self.conv = nnx.Conv(
        in_channels, out_channels, kernel_size=kernel, strides=stride,
        padding=((padding[0], padding[0]), (padding[1], padding[1])), use_bias=False, rngs=rngs)
    self.bn = nnx.BatchNorm(
        out_channels, epsilon=1e-3, use_running_average=True, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return nnx.relu(self.bn(self.conv(x)))


def _average_pool_inside(x: jax.Array) -> jax.Array:
  """3x3 average pool, stride 1, that averages only the pixels inside the image."""
  return nnx.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                      count_include_pad=False)


def _max_pool_same(x: jax.Array) -> jax.Array:
  """3x3 max pool, stride 1, padding 1 (padded pixels never win)."""
  return nnx.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def _max_pool_reduce(x: jax.Array) -> jax.Array:
  return nnx.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


# Attribute names below follow pytorch-fid's module names, so that each weight's state-dict key
# is its attribute path: `Mixed_5b.branch1x1.conv.weight` is `self.Mixed_5b.branch1x1.conv`.
# pylint: disable=invalid-name


class InceptionA(nnx.Module):
  """Mixed_5b-d: 1x1, 5x5, double 3x3 and average-pool branches."""

  def __init__(self, in_channels: int, pool_features: int, *, rngs: nnx.Rngs):
    self.branch1x1 = BasicConv(in_channels, 64, (1, 1), rngs=rngs)
    self.branch5x5_1 = BasicConv(in_channels, 48, (1, 1), rngs=rngs)
    self.branch5x5_2 = BasicConv(48, 64, (5, 5), padding=(2, 2), rngs=rngs)
    self.branch3x3dbl_1 = BasicConv(in_channels, 64, (1, 1), rngs=rngs)
    self.branch3x3dbl_2 = BasicConv(64, 96, (3, 3), padding=(1, 1), rngs=rngs)
    self.branch3x3dbl_3 = BasicConv(96, 96, (3, 3), padding=(1, 1), rngs=rngs)
    self.branch_pool = BasicConv(in_channels, pool_features, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
    branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    branch_pool = self.branch_pool(_average_pool_inside(x))
    return jnp.concatenate([self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nnx.Module):
  """Mixed_6a: halves the resolution with strided 3x3 branches and a max pool."""

  def __init__(self, in_channels: int, *, rngs: nnx.Rngs):
    self.branch3x3 = BasicConv(in_channels, 384, (3, 3), stride=2, rngs=rngs)
    self.branch3x3dbl_1 = BasicConv(in_channels, 64, (1, 1), rngs=rngs)
    self.branch3x3dbl_2 = BasicConv(64, 96, (3, 3), padding=(1, 1), rngs=rngs)
    self.branch3x3dbl_3 = BasicConv(96, 96, (3, 3), stride=2, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    return jnp.concatenate([self.branch3x3(x), branch3x3dbl, _max_pool_reduce(x)], axis=-1)


class InceptionC(nnx.Module):
  """Mixed_6b-e: factorised 7x7 branches (1x7 then 7x1) and an average-pool branch."""

  def __init__(self, in_channels: int, channels_7x7: int, *, rngs: nnx.Rngs):
    c7 = channels_7x7
    self.branch1x1 = BasicConv(in_channels, 192, (1, 1), rngs=rngs)
    self.branch7x7_1 = BasicConv(in_channels, c7, (1, 1), rngs=rngs)
    self.branch7x7_2 = BasicConv(c7, c7, (1, 7), padding=(0, 3), rngs=rngs)
    self.branch7x7_3 = BasicConv(c7, 192, (7, 1), padding=(3, 0), rngs=rngs)
    self.branch7x7dbl_1 = BasicConv(in_channels, c7, (1, 1), rngs=rngs)
    self.branch7x7dbl_2 = BasicConv(c7, c7, (7, 1), padding=(3, 0), rngs=rngs)
    self.branch7x7dbl_3 = BasicConv(c7, c7, (1, 7), padding=(0, 3), rngs=rngs)
    self.branch7x7dbl_4 = BasicConv(c7, c7, (7, 1), padding=(3, 0), rngs=rngs)
    self.branch7x7dbl_5 = BasicConv(c7, 192, (1, 7), padding=(0, 3), rngs=rngs)
    self.branch_pool = BasicConv(in_channels, 192, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    branch7x7dbl = self.branch7x7dbl_1(x)
    for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                  self.branch7x7dbl_5):
      branch7x7dbl = layer(branch7x7dbl)
    branch_pool = self.branch_pool(_average_pool_inside(x))
    return jnp.concatenate([self.branch1x1(x), branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nnx.Module):
  """Mixed_7a: halves the resolution again."""

  def __init__(self, in_channels: int, *, rngs: nnx.Rngs):
    self.branch3x3_1 = BasicConv(in_channels, 192, (1, 1), rngs=rngs)
    self.branch3x3_2 = BasicConv(192, 320, (3, 3), stride=2, rngs=rngs)
    self.branch7x7x3_1 = BasicConv(in_channels, 192, (1, 1), rngs=rngs)
    self.branch7x7x3_2 = BasicConv(192, 192, (1, 7), padding=(0, 3), rngs=rngs)
    self.branch7x7x3_3 = BasicConv(192, 192, (7, 1), padding=(3, 0), rngs=rngs)
    self.branch7x7x3_4 = BasicConv(192, 192, (3, 3), stride=2, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
    branch7x7x3 = self.branch7x7x3_1(x)
    for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
      branch7x7x3 = layer(branch7x7x3)
    return jnp.concatenate([branch3x3, branch7x7x3, _max_pool_reduce(x)], axis=-1)


class InceptionE(nnx.Module):
  """Mixed_7b and Mixed_7c: split 1x3 / 3x1 branches; `pool` picks the pool branch's pooling.

  The FID graph averages (inside the image only) in Mixed_7b and takes the maximum in Mixed_7c.
  """

  def __init__(self, in_channels: int, pool: Callable[[jax.Array], jax.Array], *,
               rngs: nnx.Rngs):
    self.pool = pool
    self.branch1x1 = BasicConv(in_channels, 320, (1, 1), rngs=rngs)
    self.branch3x3_1 = BasicConv(in_channels, 384, (1, 1), rngs=rngs)
    self.branch3x3_2a = BasicConv(384, 384, (1, 3), padding=(0, 1), rngs=rngs)
    self.branch3x3_2b = BasicConv(384, 384, (3, 1), padding=(1, 0), rngs=rngs)
    self.branch3x3dbl_1 = BasicConv(in_channels, 448, (1, 1), rngs=rngs)
    self.branch3x3dbl_2 = BasicConv(448, 384, (3, 3), padding=(1, 1), rngs=rngs)
    self.branch3x3dbl_3a = BasicConv(384, 384, (1, 3), padding=(0, 1), rngs=rngs)
    self.branch3x3dbl_3b = BasicConv(384, 384, (3, 1), padding=(1, 0), rngs=rngs)
    self.branch_pool = BasicConv(in_channels, 192, (1, 1), rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    branch3x3 = self.branch3x3_1(x)
    branch3x3 = jnp.concatenate(
        [self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], axis=-1)
    branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    branch3x3dbl = jnp.concatenate(
        [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], axis=-1)
    branch_pool = self.branch_pool(self.pool(x))
    return jnp.concatenate([self.branch1x1(x), branch3x3, branch3x3dbl, branch_pool], axis=-1)


class InceptionV3(nnx.Module):
  """The FID Inception-v3 on NHWC images in [-1, 1] at 299x299 (or any size >= 75)."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.Conv2d_1a_3x3 = BasicConv(3, 32, (3, 3), stride=2, rngs=rngs)
    self.Conv2d_2a_3x3 = BasicConv(32, 32, (3, 3), rngs=rngs)
    self.Conv2d_2b_3x3 = BasicConv(32, 64, (3, 3), padding=(1, 1), rngs=rngs)
    self.Conv2d_3b_1x1 = BasicConv(64, 80, (1, 1), rngs=rngs)
    self.Conv2d_4a_3x3 = BasicConv(80, 192, (3, 3), rngs=rngs)
    self.Mixed_5b = InceptionA(192, pool_features=32, rngs=rngs)
    self.Mixed_5c = InceptionA(256, pool_features=64, rngs=rngs)
    self.Mixed_5d = InceptionA(288, pool_features=64, rngs=rngs)
    self.Mixed_6a = InceptionB(288, rngs=rngs)
    self.Mixed_6b = InceptionC(768, channels_7x7=128, rngs=rngs)
    self.Mixed_6c = InceptionC(768, channels_7x7=160, rngs=rngs)
    self.Mixed_6d = InceptionC(768, channels_7x7=160, rngs=rngs)
    self.Mixed_6e = InceptionC(768, channels_7x7=192, rngs=rngs)
    self.Mixed_7a = InceptionD(768, rngs=rngs)
    self.Mixed_7b = InceptionE(1280, _average_pool_inside, rngs=rngs)
    self.Mixed_7c = InceptionE(2048, _max_pool_same, rngs=rngs)
    self.fc = nnx.Linear(FEATURE_SIZE, NUM_CLASSES, rngs=rngs)

  def pool3(self, images: jax.Array) -> jax.Array:
    """Returns the pool3 features [N, 2048] of images [N, H, W, 3] in [-1, 1], not resized."""
    x = images
    for layer in (self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3):
      x = layer(x)
    x = _max_pool_reduce(x)
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
    x = _max_pool_reduce(x)
    for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                  self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                  self.Mixed_7c):
      x = block(x)
    return jnp.mean(x, axis=(1, 2))

  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (pool3 features [N, 2048], logits [N, 1008]) of images [N, H, W, 3] in [-1, 1]."""
    features = self.pool3(images)
    return features, self.fc(features)


# pylint: enable=invalid-name


def resize_for_inception(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """Resizes [N, H, W, 3] images to size x size as described in the module docstring."""
  shape = (images.shape[0], size, size, images.shape[3])
  return jax.image.resize(images, shape, method="bilinear", antialias=False)


def _torch_name(path: tuple) -> str:
  """Maps an NNX state path to pytorch-fid's state-dict key."""
  *modules, leaf = [str(part) for part in path]
  renamed = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
             "var": "running_var"}[leaf]
  return ".".join(modules + [renamed])


def _from_torch_layout(name: str, array: np.ndarray) -> np.ndarray:
  """Converts a PyTorch conv [out, in, kh, kw] or linear [out, in] weight to Flax's layout."""
  if name.endswith("conv.weight"):
    return np.transpose(array, (2, 3, 1, 0))
  if name == "fc.weight":
    return array.T
  return array


def file_sha256(path: str | os.PathLike) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def missing_weights_message(detail: str) -> str:
  checksum = (f"SHA-256 {NPZ_SHA256}" if NPZ_SHA256 else
              "its SHA-256 is not recorded in jaxgan yet; the .pth file's SHA-256 starts with "
              f"{PTH_SHA256_PREFIX}, the hash prefix in its name")
  return (
      f"{detail} FID and KID need the FID Inception-v3 weights as an .npz file in pytorch-fid's "
      f"state-dict layout ({checksum}). Download pytorch-fid's weights from {PTH_URL}, convert "
      "them with `python tools/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth "
      f"inception_fid.npz` (needs PyTorch), and pass the .npz with --inception_weights or the "
      f"{ENV_VARIABLE} environment variable. SWD, diversity and nn need no weights.")


def resolve_weights_path(path: str | os.PathLike | None) -> str:
  """Returns `path`, else $JAXGAN_INCEPTION_WEIGHTS; raises InceptionWeightsError if missing."""
  chosen = str(path) if path else os.environ.get(ENV_VARIABLE, "")
  if not chosen:
    raise InceptionWeightsError(missing_weights_message(
        f"No Inception weights file given: --inception_weights and {ENV_VARIABLE} are unset."))
  if not os.path.isfile(chosen):
    raise InceptionWeightsError(missing_weights_message(
        f"Inception weights file {chosen} not found."))
  return chosen


def abstract_model() -> tuple[nnx.GraphDef, nnx.State]:
  """Returns the network's graph definition and its state as shapes, without allocating."""
  return nnx.split(nnx.eval_shape(lambda: InceptionV3(rngs=nnx.Rngs(0))))


def load(path: str | os.PathLike | None = None) -> tuple[InceptionV3, str]:
  """Builds the network from a weights .npz; returns (model, SHA-256 of the file).

  Raises:
    InceptionWeightsError: if the file is missing, unreadable, lacks a weight or has a weight of
      the wrong shape. Extra entries such as BatchNorm's `num_batches_tracked` are ignored.
  """
  path = resolve_weights_path(path)
  try:
    arrays = dict(np.load(path))
  except (OSError, ValueError) as error:
    raise InceptionWeightsError(missing_weights_message(
        f"Inception weights file {path} could not be read as .npz: {error}.")) from error

  graphdef, abstract_state = abstract_model()
  leaves, problems = [], []
  for state_path, variable in nnx.to_flat_state(abstract_state):
    name = _torch_name(state_path)
    if name not in arrays:
      problems.append(f"missing {name}")
      continue
    value = _from_torch_layout(name, np.asarray(arrays[name], dtype=np.float32))
    if value.shape != variable.get_value().shape:
      problems.append(f"{name} has shape {arrays[name].shape}")
      continue
    leaves.append((state_path, variable.replace(value=jnp.asarray(value))))
  if problems:
    listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5
                                       else "")
    raise InceptionWeightsError(missing_weights_message(
        f"Inception weights file {path} does not match the FID Inception-v3 network: {listed}."))
  model = nnx.merge(graphdef, nnx.from_flat_state(leaves))
  return model, file_sha256(path)


class FeatureExtractor:
  """Computes pool3 features of uint8 images in fixed-size batches with one compiled function.

  The last batch is padded with zeros to the batch size and the padding's features dropped, so
  the network compiles once. BatchNorm uses stored statistics, so an image's features do not
  depend on the other images in its batch.
  """

  def __init__(self, model: InceptionV3, batch_size: int = 50, input_size: int = INPUT_SIZE):
    """`input_size` other than 299 gives features that are not FID's; tests use it for speed."""
    self.batch_size = batch_size
    self.input_size = input_size
    graphdef, state = nnx.split(model)

    @jax.jit
    def features(state, images):
      network = nnx.merge(graphdef, state)
      scaled = images.astype(jnp.float32) / 127.5 - 1.0
      return network.pool3(resize_for_inception(scaled, input_size))

    self._state = state
    self._features = features

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """Returns float32 features [N, 2048] of uint8 images [N, H, W, 3]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    features = batching.apply_in_batches(
        lambda batch: self._features(self._state, batch), images, self.batch_size)
    return features.astype(np.float32)
