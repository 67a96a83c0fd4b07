"""The interface between data sources (folder, TFDS, generated) and the input pipeline."""

import dataclasses
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageSource:
  """A finite, indexable set of RGB training images, all at one square resolution.

  Attributes:
    name: short description for logs, for example "folder /data/faces (992 images)".
    num_images: number of images; valid indices are 0 .. num_images - 1.
    image_size: height and width in pixels of every image that `read` returns.
    read: maps an int array of indices to a uint8 array [len(indices), size, size, 3]. It must be
      thread-safe and deterministic: the same index always gives the same pixels.
    ids: one id per image (a file stem such as "191", or "generated/17"), for reports.
  """

  name: str
  num_images: int
  image_size: int
  read: Callable[[np.ndarray], np.ndarray]
  ids: tuple[str, ...]


def from_array(name: str, images: np.ndarray, ids: tuple[str, ...]) -> ImageSource:
  """Wraps decoded images held in memory, uint8 [N, size, size, 3], as an `ImageSource`."""
  if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
    raise ValueError(f"expected uint8 images [N, size, size, 3], got shape {images.shape}")
  if images.dtype != np.uint8:
    raise ValueError(f"expected uint8 images, got dtype {images.dtype}")
  if len(ids) != len(images):
    raise ValueError(f"got {len(ids)} ids for {len(images)} images")

  def read(indices: np.ndarray) -> np.ndarray:
    return images[np.asarray(indices)]

  return ImageSource(
      name=name, num_images=len(images), image_size=images.shape[1], read=read, ids=tuple(ids))
