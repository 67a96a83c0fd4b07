"""Paths between latent vectors, for interpolation GIFs."""

from typing import Any

import jax
import numpy as np


def interpolate(start: np.ndarray, end: np.ndarray, steps: int, mode: str) -> np.ndarray:
  """Returns `steps` latents from `start` to `end` (both included), "linear" or "slerp".

  Spherical interpolation (slerp) follows the arc between the two latents, so for endpoints of
  similar norm the intermediate latents keep about that norm, a typical one for N(0, I). Linear
  interpolation passes closer to the origin. Nearly parallel latents fall back to linear.
  """
  weights = np.linspace(0.0, 1.0, steps)
  if mode == "linear":
    return np.stack([(1 - t) * start + t * end for t in weights])
  start_norm, end_norm = np.linalg.norm(start), np.linalg.norm(end)
  cosine = np.dot(start.ravel(), end.ravel()) / max(start_norm * end_norm, 1e-12)
  angle = np.arccos(np.clip(cosine, -1.0, 1.0))
  if angle < 1e-4:
    return interpolate(start, end, steps, "linear")
  frames = [(np.sin((1 - t) * angle) * start + np.sin(t * angle) * end) / np.sin(angle)
            for t in weights]
  return np.stack(frames)


def interpolate_image(starts: Any, ends: Any, index: int, steps: int, mode: str) -> Any:
  """Returns the latents of `steps` frames from image `index` of `starts` to that of `ends`.

  `starts` and `ends` are latents of the same number of images with the same structure: one
  array [N, ...] or a pytree whose leaves are per-image arrays [N, ...] or scalars shared by all
  images. Floating-point per-image leaves (such as z) are interpolated. Every other per-image
  leaf (such as a class label) is the same in every frame. Shared scalars are kept as they are.

  Raises:
    ValueError: when a per-image leaf that is not interpolated differs between the endpoints.
  """

  def path(start, end):
    start, end = np.asarray(start), np.asarray(end)
    if start.ndim == 0:
      return start
    if np.issubdtype(start.dtype, np.floating):
      return interpolate(start[index], end[index], steps, mode).astype(start.dtype)
    if not np.array_equal(start[index], end[index]):
      raise ValueError(
          f"Invalid interpolation endpoints: image {index} has the non-interpolated latent "
          f"{start[index].tolist()} at the start but {end[index].tolist()} at the end.")
    return np.repeat(start[index][None], steps, axis=0)

  return jax.tree.map(path, starts, ends)
