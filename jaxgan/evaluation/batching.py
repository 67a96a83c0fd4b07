"""Runs a compiled function over images in batches of one fixed shape."""

from typing import Callable

import numpy as np


def apply_in_batches(function: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                     batch_size: int) -> np.ndarray:
  """Applies `function` to `images` [N, ...] batch by batch and concatenates the outputs.

  The last batch is padded with zero images to `batch_size` and the padding's outputs dropped,
  so a jitted `function` compiles once. Each output row must depend only on its own image.
  """
  outputs = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    padding = batch_size - len(batch)
    if padding:
      batch = np.concatenate([batch, np.zeros((padding,) + batch.shape[1:], batch.dtype)])
    outputs.append(np.asarray(function(batch))[:len(batch) - padding])
  return np.concatenate(outputs)
