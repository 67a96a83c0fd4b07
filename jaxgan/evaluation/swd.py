"""Sliced Wasserstein distance (SWD) between Laplacian-pyramid patches of two image sets.

This is the measure that Karras et al. introduced with progressive GANs ("Progressive Growing of
GANs for Improved Quality, Stability, and Variation", ICLR 2018). Each image is split into a
Laplacian pyramid down to 16x16, and random 7x7 patches are taken from every level. Each set's
patches are normalised per colour channel. Then random 1-D projections estimate the distance
between the two patch distributions at each level. It needs no network weights. Fine levels
measure detail, and the coarsest level measures colour and layout.
"""

import dataclasses

import numpy as np

# Binomial 5-tap filter, the Gaussian approximation of Burt and Adelson's Laplacian pyramid.
_BINOMIAL_5 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


@dataclasses.dataclass(frozen=True)
class SWDSettings:
  """Everything that changes an SWD value besides the images; recorded with each result."""

  min_resolution: int = 16
  patch_size: int = 7
  patches_per_image: int = 128
  num_repeats: int = 4
  directions_per_repeat: int = 128
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class SWDResult:
  """SWD per pyramid level, finest first, and their mean; all in units of 1e-3 (value * 1000)."""

  resolutions: list[int]
  per_level: list[float]
  mean: float


def _blur(images: np.ndarray) -> np.ndarray:
  """Filters [N, H, W, C] with the separable binomial filter, reflecting at the borders."""
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  height, width = images.shape[1], images.shape[2]
  rows = sum(tap * padded[:, i:i + height] for i, tap in enumerate(_BINOMIAL_5))
  return sum(tap * rows[:, :, i:i + width] for i, tap in enumerate(_BINOMIAL_5))


def _downsample(images: np.ndarray) -> np.ndarray:
  return _blur(images)[:, ::2, ::2]


def _upsample(images: np.ndarray) -> np.ndarray:
  """Doubles H and W by inserting zeros and filtering; the factor 4 restores the brightness."""
  count, height, width, channels = images.shape
  spread = np.zeros((count, 2 * height, 2 * width, channels), dtype=images.dtype)
  spread[:, ::2, ::2] = images
  return 4.0 * _blur(spread)


def laplacian_pyramid(images: np.ndarray, min_resolution: int = 16) -> list[np.ndarray]:
  """Returns the Laplacian pyramid of [N, S, S, C] images, finest level first.

  Every level but the last contains the detail lost by halving the resolution. The last level
  is the low-pass image at the smallest resolution >= `min_resolution`, so the levels add up to
  the input again.
  """
  images = np.asarray(images, dtype=np.float64)
  levels = []
  current = images
  while current.shape[1] // 2 >= min_resolution and current.shape[1] % 2 == 0:
    smaller = _downsample(current)
    levels.append(current - _upsample(smaller))
    current = smaller
  levels.append(current)
  return levels


def _patch_positions(
    shape: tuple[int, ...], patch_size: int, patches_per_image: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
  """Returns the top-left rows and columns [N, patches_per_image] of random patches."""
  count, height, width, _ = shape
  rows = rng.integers(0, height - patch_size + 1, size=(count, patches_per_image))
  cols = rng.integers(0, width - patch_size + 1, size=(count, patches_per_image))
  return rows, cols


def _take_patches(
    level: np.ndarray, rows: np.ndarray, cols: np.ndarray, patch_size: int
) -> np.ndarray:
  """Returns [N * P, patch_size, patch_size, C] patches at the positions `rows`, `cols` [N, P]."""
  count = level.shape[0]
  offsets = np.arange(patch_size)
  image_index = np.arange(count)[:, None, None, None]
  row_index = (rows[:, :, None, None] + offsets[None, None, :, None])
  col_index = (cols[:, :, None, None] + offsets[None, None, None, :])
  patches = level[image_index, row_index, col_index]  # [N, P, patch, patch, C]
  return patches.reshape(-1, patch_size, patch_size, level.shape[-1])


def _normalize_per_channel(patches: np.ndarray) -> np.ndarray:
  """Flattens patches after subtracting each channel's mean and dividing by its std."""
  mean = patches.mean(axis=(0, 1, 2), keepdims=True)
  std = patches.std(axis=(0, 1, 2), keepdims=True)
  normalized = (patches - mean) / np.maximum(std, 1e-12)
  return normalized.reshape(patches.shape[0], -1)


def sliced_wasserstein(
    first: np.ndarray, second: np.ndarray, rng: np.random.Generator, num_repeats: int,
    directions_per_repeat: int
) -> float:
  """Returns the mean over random unit directions of the 1-D Wasserstein-1 distance.

  `first` and `second` are [K, D] with the same K. Along each direction, the 1-D distance is the
  mean absolute difference of the sorted projections.
  """
  distances = []
  for _ in range(num_repeats):
    directions = rng.standard_normal((first.shape[1], directions_per_repeat))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    directions = directions.astype(first.dtype)
    projected_first = np.sort(first @ directions, axis=0)
    projected_second = np.sort(second @ directions, axis=0)
    distances.append(np.mean(np.abs(projected_first - projected_second), dtype=np.float64))
  return float(np.mean(distances))


def sliced_wasserstein_distance(
    real: np.ndarray, fake: np.ndarray, settings: SWDSettings = SWDSettings()
) -> SWDResult:
  """Returns the multi-scale SWD between two sets of [N, S, S, C] images of the same size.

  The sets must have the same number of images, so that both give the same number of patches.
  The value range does not matter, because each set's patches are normalised per channel.
  Patch positions and projection directions come from `settings.seed`. Both are the same for
  the two sets: image i of each set gives patches at the same places, which lowers the variance
  of the estimate and makes the distance of a set to itself exactly 0.
  """
  real = np.asarray(real, dtype=np.float64)
  fake = np.asarray(fake, dtype=np.float64)
  if real.ndim != 4 or real.shape != fake.shape:
    raise ValueError(
        f"expected two image sets of equal shape [N, S, S, C], got {real.shape} and {fake.shape}")
  if real.shape[1] != real.shape[2] or real.shape[1] < settings.patch_size:
    raise ValueError(
        f"expected square images of at least {settings.patch_size} pixels, got {real.shape}")

  real_levels = laplacian_pyramid(real, settings.min_resolution)
  fake_levels = laplacian_pyramid(fake, settings.min_resolution)
  rng = np.random.default_rng(settings.seed)
  per_level = []
  for real_level, fake_level in zip(real_levels, fake_levels):
    rows, cols = _patch_positions(
        real_level.shape, settings.patch_size, settings.patches_per_image, rng)
    real_patches = _take_patches(real_level, rows, cols, settings.patch_size)
    fake_patches = _take_patches(fake_level, rows, cols, settings.patch_size)
    # Projecting and sorting in float32 halves the time of the slowest step; the distances are
    # means over >= 10^4 values of order 1, far above float32 rounding.
    distance = sliced_wasserstein(
        _normalize_per_channel(real_patches).astype(np.float32),
        _normalize_per_channel(fake_patches).astype(np.float32), rng,
        settings.num_repeats, settings.directions_per_repeat)
    per_level.append(distance * 1e3)
  return SWDResult(
      resolutions=[level.shape[1] for level in real_levels], per_level=per_level,
      mean=float(np.mean(per_level)))
