"""Sample diversity: how far apart the images of a set are from each other."""

import numpy as np


def _flatten(images: np.ndarray, name: str) -> np.ndarray:
  images = np.asarray(images, dtype=np.float64)
  if images.ndim != 4:
    raise ValueError(f"expected {name} of shape [N, H, W, C], got {images.shape}")
  return images.reshape(images.shape[0], -1)


def pairwise_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """Returns the [N, M] matrix of L2 distances between images, divided by sqrt(values per image).

  `first` is [N, H, W, C] and `second` [M, H, W, C]; divided this way a distance is the
  root-mean-square difference per value, so it does not grow with the resolution.
  """
  first_flat = _flatten(first, "first")
  second_flat = _flatten(second, "second")
  if first_flat.shape[1] != second_flat.shape[1]:
    raise ValueError(
        f"image shapes differ: {np.shape(first)[1:]} and {np.shape(second)[1:]}")

  # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b over all pairs at once, clipped at 0 because rounding
  # can make it slightly negative for identical images.
  squared = (np.sum(first_flat * first_flat, axis=1)[:, None]
             + np.sum(second_flat * second_flat, axis=1)[None, :]
             - 2.0 * first_flat @ second_flat.T)
  return np.sqrt(np.maximum(squared, 0.0)) / np.sqrt(first_flat.shape[1])


def mean_pairwise_distance(images: np.ndarray) -> float:
  """Returns the mean L2 distance over all pairs of distinct images, divided by sqrt(pixels).

  `images` is [N, H, W, C] in any value range. Compare only sets with the same range and size.
  Dividing by the square root of the number of values makes the result the root-mean-square
  per-value difference, so it does not grow with the resolution. A generator that has collapsed
  to one output gives values near 0; compare with the same measure on real images.
  """
  images = np.asarray(images, dtype=np.float64)
  if images.ndim != 4 or images.shape[0] < 2:
    raise ValueError(f"expected at least 2 images of shape [N, H, W, C], got {images.shape}")
  distances = pairwise_distances(images, images)
  upper = np.triu_indices(images.shape[0], k=1)
  return float(np.mean(distances[upper]))


# A fake set whose diversity is below this fraction of the real set's is reported as collapsed.
# NOTE: a heuristic threshold: partial collapse above it shows only as a ratio below 1.
COLLAPSE_RATIO = 0.5


def compare_with_real(fakes: np.ndarray, reals: np.ndarray) -> dict[str, float | bool]:
  """Returns the diversity of fakes and reals, their ratio and whether it signals collapse.

  Both sets must have the same value range, resolution and, for a fair ratio, size: the mean
  pairwise distance of a small sample is a noisier estimate.
  """
  fake_diversity = mean_pairwise_distance(fakes)
  real_diversity = mean_pairwise_distance(reals)
  ratio = fake_diversity / real_diversity if real_diversity > 0 else float("nan")
  return {
      "fake": fake_diversity,
      "real": real_diversity,
      "ratio": ratio,
      "collapsed": bool(ratio < COLLAPSE_RATIO),
  }
