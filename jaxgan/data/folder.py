"""The `folder` data source: PNG and JPEG files directly inside one folder."""

import concurrent.futures
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from absl import logging

from jaxgan.data import images
from jaxgan.data import source
from jaxgan.errors import DataError

_MIB = 1 << 20


def _check_enough_images(num_readable: int, min_images: int, directory: Path, num_unreadable: int,
                         num_excluded: int) -> None:
  if num_readable >= min_images:
    return
  raise DataError(
      f"Only {num_readable} readable images in {directory} ({num_unreadable} unreadable, "
      f"{num_excluded} excluded by id), but the run needs at least {min_images}, one global "
      "batch. Add images to the folder or lower --config.data.batch_size.")


def _no_images_error(directory: Path) -> DataError:
  return DataError(
      f"No image files ({', '.join(images.IMAGE_EXTENSIONS)}) found in {directory}. Put the "
      "training images directly in this folder, because subfolders are not searched, or pass "
      "another folder with --config.data.dir.")


def check_folder(directory: str | os.PathLike) -> None:
  """Checks that `directory` is a readable folder with image files in it or in a subfolder.

  It lists file names and reads no image, so `jaxgan.main` runs it before importing JAX and
  TensorFlow. Images in subfolders pass because conditional models read class subfolders.
  `make_source` and the class-folder source check the files that they use.

  Raises:
    DataError: if the folder is missing, not readable, or contains no image file at either level.
  """
  directory = Path(directory)
  image_files, excluded_files = images.list_image_files(directory)
  if image_files or excluded_files:
    return
  for subfolder in sorted(directory.iterdir()):
    try:
      if subfolder.is_dir() and images.list_image_files(subfolder)[0]:
        return
    except (DataError, OSError):
      continue  # An unreadable subfolder is reported by the source that reads it.
  raise _no_images_error(directory)


def _make_streaming_read(paths: list[Path], image_size: int, num_threads: int):
  """Returns a thread-safe `read(indices)` that decodes the files on every call."""
  executor = concurrent.futures.ThreadPoolExecutor(
      max_workers=num_threads or os.cpu_count() or 1, thread_name_prefix="folder-read")

  def read_one(index: int) -> np.ndarray:
    path = paths[index]
    try:
      return images.read_image(path, image_size)
    except images.UnreadableImageError as error:
      # The check in make_source catches truncated PNG files but few broken JPEG files, and a
      # file can also change on disk after it.
      raise DataError(
          f"Image file {path} could not be read while streaming: {error.reason}. Remove or "
          "replace the file and restart the run.") from error

  def read(indices: np.ndarray) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1:
      raise ValueError(f"expected a 1-D array of indices, got shape {indices.shape}")
    batch = np.empty((len(indices), image_size, image_size, 3), dtype=np.uint8)
    for row, image in enumerate(executor.map(read_one, indices.tolist())):
      batch[row] = image
    return batch

  return read


def make_source(
    directory: str | os.PathLike,
    image_size: int,
    exclude_ids: Iterable[str | int] = (),
    min_images: int = 1,
    cache_max_bytes: int = 4 << 30,
    num_threads: int = 0,
    select: Callable[[list[Path]], list[Path]] | None = None,
) -> source.ImageSource:
  """Creates an image source from the PNG and JPEG files directly inside `directory`.

  Images are center-cropped to a square and resized to `image_size` (see `images.read_image`).
  When all decoded images fit in `cache_max_bytes`, they are decoded once, here. Otherwise
  each `read` call decodes its files again, and only a cheap check runs here. Unreadable files
  are skipped with one warning. Image ids are the file names up to the first dot.

  Args:
    directory: the folder. Subfolders are not searched.
    image_size: height and width in pixels of the images that the source returns.
    exclude_ids: file ids to leave out, for example known non-face images.
    min_images: the smallest number of readable images that the run can use.
    cache_max_bytes: the maximum size in bytes of the decoded images held in memory.
    num_threads: number of decoding threads, where 0 means `os.cpu_count()`.
    select: maps the listed, not excluded files to the files to use (for example a filter on the
      file name or a random subset), before any file is read.

  Raises:
    DataError: if the folder is missing, contains no image files, or has fewer than
      `min_images` readable images that are not excluded.
  """
  directory = Path(directory)
  paths, excluded = images.list_image_files(directory, exclude_ids)
  if not paths and not excluded:
    raise _no_images_error(directory)
  if excluded:
    logging.info("Excluded %d image files in %s by id: %s", len(excluded), directory,
                 ", ".join(images.file_id(path) for path in excluded))
  if select is not None:
    paths = select(paths)

  num_files = len(paths)
  cache_bytes = num_files * image_size * image_size * 3
  if cache_bytes <= cache_max_bytes:
    logging.info("Decoding %d image files in %s into memory (%.1f MiB)", num_files, directory,
                 cache_bytes / _MIB)
    decoded, kept, skipped = images.read_images(paths, image_size, num_threads)
    images.log_skipped_files(skipped, num_files, directory)
    _check_enough_images(len(kept), min_images, directory, len(skipped), len(excluded))
    ids = tuple(images.file_id(paths[index]) for index in kept)
    name = f"folder {directory} ({len(kept)} images, {image_size}x{image_size})"
    return source.from_array(name, decoded, ids)

  logging.info(
      "Streaming %d image files from %s, because decoded they need %.1f MiB, more than "
      "cache_max_bytes (%.1f MiB)", num_files, directory, cache_bytes / _MIB,
      cache_max_bytes / _MIB)
  results, failures = images.map_in_threads(images.verify_image, paths, num_threads)
  images.log_skipped_files([(paths[index], reason) for index, reason in failures], num_files,
                           directory)
  _check_enough_images(len(results), min_images, directory, len(failures), len(excluded))
  readable = [paths[index] for index, _ in results]
  return source.ImageSource(
      name=f"folder {directory} ({len(readable)} images, {image_size}x{image_size})",
      num_images=len(readable),
      image_size=image_size,
      read=_make_streaming_read(readable, image_size, num_threads),
      ids=tuple(images.file_id(path) for path in readable),
  )
