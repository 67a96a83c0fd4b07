"""DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

D receives every image, real or fake, after the same random, differentiable augmentation, so it
cannot memorise a small training set, and G's gradient passes through the augmentation. Images
are NHWC in [-1, 1], and every op keeps them in that range. Each image gets its own random
parameters, drawn for the whole (global) batch from one key, so the result does not depend on
how many devices share the batch.
"""

import jax
import jax.numpy as jnp

from jaxgan import parallel

OPS = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
  """Splits a comma-separated policy such as "color,translation,cutout"; raises on unknown ops."""
  ops = tuple(op.strip() for op in policy.split(",") if op.strip())
  unknown = [op for op in ops if op not in OPS]
  if unknown:
    raise ValueError(f"unknown DiffAugment ops {unknown}; known: {', '.join(OPS)}")
  return ops


def _color(x: jax.Array, key: jax.Array) -> jax.Array:
  """Random brightness (+U(-0.5, 0.5) in [0, 1] units), saturation (x U(0, 2)), contrast
  (x U(0.5, 1.5)), then clipped to [-1, 1]."""
  brightness_key, saturation_key, contrast_key = jax.random.split(key, 3)
  shape = (x.shape[0], 1, 1, 1)
  x = x + jax.random.uniform(brightness_key, shape, minval=-1.0, maxval=1.0)
  gray = x.mean(axis=3, keepdims=True)
  x = (x - gray) * jax.random.uniform(saturation_key, shape, minval=0.0, maxval=2.0) + gray
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  x = (x - mean) * jax.random.uniform(contrast_key, shape, minval=0.5, maxval=1.5) + mean
  return jnp.clip(x, -1.0, 1.0)


def _translation(x: jax.Array, key: jax.Array, ratio: float = 0.125) -> jax.Array:
  """Shifts each image by up to ratio * size pixels along each axis, filling with 0 (grey)."""
  batch, height, width, _ = x.shape
  max_dy, max_dx = int(height * ratio + 0.5), int(width * ratio + 0.5)
  dy_key, dx_key = jax.random.split(key)
  dy = jax.random.randint(dy_key, (batch,), -max_dy, max_dy + 1)
  dx = jax.random.randint(dx_key, (batch,), -max_dx, max_dx + 1)
  dy, dx = parallel.shard_batch_like(dy, x), parallel.shard_batch_like(dx, x)
  padded = jnp.pad(x, ((0, 0), (max_dy, max_dy), (max_dx, max_dx), (0, 0)))

  def shift(image, row_shift, column_shift):
    # Output pixel (i, j) is input pixel (i - dy, j - dx), or padding outside the image.
    return jax.lax.dynamic_slice(
        image, (max_dy - row_shift, max_dx - column_shift, 0), (height, width, x.shape[3]))

  return jax.vmap(shift)(padded, dy, dx)


def _cutout(x: jax.Array, key: jax.Array, ratio: float = 0.5) -> jax.Array:
  """Sets a (ratio * size)-sided square at a random centre of each image to 0 (grey).

  The square is clipped at the image border, so it may cover less than ratio^2 of the image.
  """
  batch, height, width, _ = x.shape
  cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
  y_key, x_key = jax.random.split(key)
  top = jax.random.randint(y_key, (batch, 1, 1), 0, height + (1 - cut_h % 2)) - cut_h // 2
  left = jax.random.randint(x_key, (batch, 1, 1), 0, width + (1 - cut_w % 2)) - cut_w // 2
  rows = jnp.arange(height)[None, :, None]
  columns = jnp.arange(width)[None, None, :]
  inside = (rows >= top) & (rows < top + cut_h) & (columns >= left) & (columns < left + cut_w)
  return jnp.where(inside[..., None], 0.0, x)


_FUNCTIONS = {"color": _color, "translation": _translation, "cutout": _cutout}


def augment(x: jax.Array, key: jax.Array, ops: tuple[str, ...]) -> jax.Array:
  """Applies `ops` (from `parse_policy`) in order to images [B, H, W, C]; no ops returns x."""
  for index, op in enumerate(ops):
    x = _FUNCTIONS[op](x, jax.random.fold_in(key, index))
  return x
