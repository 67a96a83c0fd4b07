"""Memorisation check: how close each generated image is to its nearest training image.

A generator that copies training images gives fakes much closer to a training image than a
real image outside the training set ever is. The reference is either held-out real images or,
when every real image was used in training, each training image's distance to the other
training images (leave-one-out).
"""

import numpy as np

from jaxgan.evaluation import diversity

# Rows of the distance matrix computed at once; bounds memory at _CHUNK * len(train) doubles.
_CHUNK = 256


def nearest_distances(
    queries: np.ndarray, references: np.ndarray, *, exclude_same_index: bool = False
) -> tuple[np.ndarray, np.ndarray]:
  """Returns the distance [N] of each query to its nearest reference image, and that index [N].

  Distances are `diversity.pairwise_distances` (RMS difference per value). With
  `exclude_same_index`, query i is not matched with reference i, for a set against itself.
  """
  distances = np.empty(len(queries))
  indices = np.empty(len(queries), dtype=np.int64)
  for start in range(0, len(queries), _CHUNK):
    block = diversity.pairwise_distances(queries[start:start + _CHUNK], references)
    if exclude_same_index:
      rows = np.arange(block.shape[0])
      block[rows, rows + start] = np.inf
    indices[start:start + _CHUNK] = np.argmin(block, axis=1)
    distances[start:start + _CHUNK] = block[np.arange(block.shape[0]),
                                            indices[start:start + _CHUNK]]
  return distances, indices


def memorization_report(
    fakes: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray | None = None,
    *,
    num_closest: int = 5,
) -> dict:
  """Compares fake-to-train nearest distances with real-to-train ones.

  Args:
    fakes: generated images [N, H, W, C], in the same value range as `train`.
    train: the training images [M, H, W, C].
    held_out: real images not used in training; None uses `train` leave-one-out.
    num_closest: how many of the closest fake-train pairs to list.

  Returns:
    A JSON-compatible dict with the median, mean and min nearest distance of fakes and of real
    images, and the ratio of the medians. A ratio below 1 means that fakes sit closer to
    training images than real images do. It also has the fraction of fakes closer to a
    training image than the 1st percentile of the real distances, and the closest pairs as
    (fake index, train index, distance).
  """
  if len(train) < 2:
    raise ValueError(f"need at least 2 training images, got {len(train)}")
  fake_distances, fake_indices = nearest_distances(fakes, train)
  if held_out is None:
    real_distances, _ = nearest_distances(train, train, exclude_same_index=True)
    reference = "train_leave_one_out"
  else:
    real_distances, _ = nearest_distances(held_out, train)
    reference = "held_out"

  threshold = float(np.percentile(real_distances, 1))
  closest = np.argsort(fake_distances)[:num_closest]
  return {
      "reference": reference,
      "fake_median": float(np.median(fake_distances)),
      "fake_mean": float(np.mean(fake_distances)),
      "fake_min": float(np.min(fake_distances)),
      "real_median": float(np.median(real_distances)),
      "real_mean": float(np.mean(real_distances)),
      "real_min": float(np.min(real_distances)),
      "median_ratio": float(np.median(fake_distances) / np.median(real_distances)),
      "real_percentile_1": threshold,
      "fraction_below_real_percentile_1": float(np.mean(fake_distances < threshold)),
      "closest_pairs": [[int(i), int(fake_indices[i]), float(fake_distances[i])]
                        for i in closest],
  }
