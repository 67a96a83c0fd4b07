"""The class-folder data source: root/<class>/*.png|jpg, one subfolder per class.

Class indices follow the sorted folder names, so the same folders always give the same labels.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
from absl import logging

from jaxgan.data import images
from jaxgan.data import source as source_lib
from jaxgan.errors import ConfigError
from jaxgan.errors import DataError


@dataclasses.dataclass(frozen=True)
class LabeledSource:
  """Images with one class label each.

  Attributes:
    images: the images of every class, class by class.
    labels: int32 [num_images], the class index of each image.
    class_names: the folder name of each class index.
  """

  images: source_lib.ImageSource
  labels: np.ndarray
  class_names: tuple[str, ...]

  @property
  def name(self) -> str:
    return self.images.name

  @property
  def num_images(self) -> int:
    return self.images.num_images

  @property
  def image_size(self) -> int:
    return self.images.image_size


def list_classes(root: str | os.PathLike) -> list[str]:
  """Returns the sorted names of the subfolders of `root`; raises DataError when there are none."""
  root = Path(root)
  if not root.is_dir():
    problem = "is not a folder" if root.exists() else "does not exist"
    raise DataError(
        f"Class folder root {root} {problem}. Pass a folder with one subfolder of images per "
        "class with --config.data.dir.")
  names = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
  if not names:
    raise DataError(
        f"No class subfolders found in {root}. Put the images of each class in its own "
        "subfolder, for example root/bart_simpson/*.jpg, or pass another --config.data.dir.")
  return names


def check_num_classes(root: str | os.PathLike, num_classes: int) -> list[str]:
  """Lists the class folders of `root` and checks that there are `num_classes` of them.

  It reads no image, so `jaxgan.main` runs it before training starts.

  Returns:
    The sorted class folder names.

  Raises:
    DataError: if `root` is missing or has no subfolders.
    ConfigError: if the number of subfolders differs from `num_classes`.
  """
  found = list_classes(root)
  if len(found) != num_classes:
    raise ConfigError(
        f"Invalid config value model.num_classes={num_classes}: {root} has {len(found)} class "
        f"folders ({', '.join(found)}). Pass --config.model.num_classes={len(found)}, or a "
        f"--config.data.dir with {num_classes} class subfolders.")
  return found


def make_source(
    root: str | os.PathLike,
    image_size: int,
    *,
    min_images: int = 1,
    num_threads: int = 0,
) -> LabeledSource:
  """Decodes every image under root/<class>/ into memory, resized to `image_size`.

  Images are centre-cropped to a square and resized as `images.read_image` does. Unreadable
  files are skipped with one warning per class that counts them.

  NOTE: unlike the "folder" source, this one always decodes into memory (data.cache_max_gib is
  not used), which suits small labelled sets such as 10 classes of 28x28 images.

  Raises:
    DataError: if the root has no class subfolders, a class folder has no readable image, or
      there are fewer than `min_images` readable images in total.
  """
  root = Path(root)
  class_names = list_classes(root)
  arrays, labels, ids = [], [], []
  for class_index, class_name in enumerate(class_names):
    paths, _ = images.list_image_files(root / class_name)
    decoded, kept, skipped = images.read_images(paths, image_size, num_threads)
    images.log_skipped_files(skipped, len(paths), root / class_name)
    if not kept:
      raise DataError(
          f"Class folder {root / class_name} contains no readable image file "
          f"({', '.join(images.IMAGE_EXTENSIONS)}). Add images or remove the folder.")
    arrays.append(decoded)
    labels.append(np.full(len(kept), class_index, np.int32))
    ids.extend(f"{class_name}/{images.file_id(paths[index])}" for index in kept)

  all_images = np.concatenate(arrays)
  if len(all_images) < min_images:
    raise DataError(
        f"Only {len(all_images)} readable images in the class folders of {root}, but the run "
        f"needs at least {min_images}, one global batch. Add images or lower "
        "--config.data.batch_size.")
  name = (f"class folders {root} ({len(all_images)} images, {len(class_names)} classes, "
          f"{image_size}x{image_size})")
  logging.info("Classes of %s: %s", root, ", ".join(
      f"{index}={name} ({len(array)})" for index, (name, array) in
      enumerate(zip(class_names, arrays))))
  return LabeledSource(
      images=source_lib.from_array(name, all_images, tuple(ids)),
      labels=np.concatenate(labels), class_names=tuple(class_names))
