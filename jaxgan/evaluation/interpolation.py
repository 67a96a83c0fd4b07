"""Paths between latent vectors, for interpolation GIFs."""

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
