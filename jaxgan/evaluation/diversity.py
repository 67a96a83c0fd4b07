"""Sample diversity: how far apart the images of a set are from each other."""

import numpy as np


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
  flat = images.reshape(images.shape[0], -1)

  # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b over all pairs at once, clipped at 0 because rounding
  # can make it slightly negative for identical images.
  squared_norms = np.sum(flat * flat, axis=1)
  squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * flat @ flat.T
  distances = np.sqrt(np.maximum(squared, 0.0))
  upper = np.triu_indices(flat.shape[0], k=1)
  return float(np.mean(distances[upper]) / np.sqrt(flat.shape[1]))
