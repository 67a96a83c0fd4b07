"""Reading image files of any common mode into uint8 RGB squares, and listing image folders."""

import concurrent.futures
import os
import re
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Sequence, TypeVar

import numpy as np
from absl import logging
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxgan.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

# Images with more pixels are rejected before decoding, because a small compressed file can
# expand to gigabytes (a decompression bomb). The value equals Pillow's default
# `Image.MAX_IMAGE_PIXELS` (1024 MiB of 24-bit pixels), about a 9459 x 9459 image.
MAX_IMAGE_PIXELS = 89_478_485

# Number of unreadable files that `log_skipped_files` names before it only counts the rest.
_MAX_NAMED_SKIPPED = 5

# Exceptions that Pillow raises for a broken, truncated or unsupported file. Pillow raises
# DecompressionBombError itself above twice its pixel limit. DecompressionBombWarning is caught
# in case a warnings filter has turned it into an error.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

# Pillow warns, at Image.open, about images between its pixel limit and twice that limit, and
# `_check_pixel_count` then rejects them. Turning the warning into an error makes such a file
# count as unreadable without a warning in the log. The filter is process-wide.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


class UnreadableImageError(Exception):
  """An image file that cannot be decoded: missing, empty, truncated, not an image, or too big.

  Attributes:
    path: the file, or the member name for an image inside an archive.
    reason: a short description of the failure, for example "image file is truncated".
  """

  def __init__(self, path: str | os.PathLike, reason: str):
    super().__init__(f"Cannot read image {os.fspath(path)}: {reason}")
    self.path = path
    self.reason = reason


def _describe_error(error: BaseException) -> str:
  """Returns a short reason for a decode failure, without the path that Pillow often repeats."""
  if isinstance(error, UnidentifiedImageError):
    return "not an image file in a format that Pillow can identify"
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  if isinstance(error, Image.DecompressionBombError | Image.DecompressionBombWarning):
    return f"too many pixels, possibly a decompression bomb ({error})"
  message = str(error)
  return message if message else type(error).__name__


def _check_pixel_count(image: Image.Image) -> None:
  limit = MAX_IMAGE_PIXELS
  if Image.MAX_IMAGE_PIXELS is not None:
    limit = min(limit, Image.MAX_IMAGE_PIXELS)
  width, height = image.size
  if width * height > limit:
    raise Image.DecompressionBombError(
        f"{width}x{height} = {width * height} pixels, more than the limit of {limit}")


def _sixteen_bit_to_eight_bit(values: np.ndarray) -> np.ndarray:
  """Scales 0..65535 to 0..255 with rounding, so that 65535 maps to 255 and 257 maps to 1."""
  values = np.clip(values.astype(np.float64), 0, 65535)
  return np.round(values / 257.0).astype(np.uint8)


def _integer_or_float_to_rgb(image: Image.Image) -> Image.Image:
  """Converts a grayscale image of mode I;16*, I or F to 8-bit RGB, scaling instead of clipping."""
  values = np.asarray(image)
  if image.mode.startswith("I;16") or image.mode == "I":
    # Pillow stores 16-bit grayscale PNG and TIFF data in these modes.
    # NOTE: mode "I" can also contain 32-bit data, and values above 65535 are clipped to white.
    gray = _sixteen_bit_to_eight_bit(values)
  else:
    # Mode "F": floats in 0..1 are scaled to 0..255. Any other range is read as 0..255.
    values = values.astype(np.float64)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
      values = values * 255.0
    gray = np.round(np.clip(values, 0, 255)).astype(np.uint8)
  return Image.fromarray(np.stack([gray] * 3, axis=-1))


def _composite_over_black(image: Image.Image) -> Image.Image:
  rgba = np.asarray(image.convert("RGBA"), dtype=np.uint32)
  alpha = rgba[..., 3:4]
  rgb = (rgba[..., :3] * alpha + 127) // 255
  return Image.fromarray(rgb.astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
  """Converts an image of any Pillow mode to 8-bit RGB.

  Transparent pixels are composited over black, including palette and grayscale images with a
  transparency key. 16-bit grayscale is scaled to 8 bits.
  """
  if image.mode == "RGB":
    return image
  if image.mode.startswith("I") or image.mode == "F":
    return _integer_or_float_to_rgb(image)
  has_alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
  if has_alpha:
    return _composite_over_black(image)
  return image.convert("RGB")


def open_rgb(
    file: str | os.PathLike | BinaryIO,
    name: str | os.PathLike | None = None,
) -> Image.Image:
  """Decodes a whole image file into an upright 8-bit RGB image at its original size.

  Applies the EXIF orientation tag and `to_rgb`. Decoding happens here, not lazily, so that a
  truncated file fails now.

  Args:
    file: a path, or a binary file object such as an archive member.
    name: the path or member name used in errors. Defaults to `file` when it is a path.

  Raises:
    UnreadableImageError: for any failure, including a missing file, a file of zero bytes and
      an image with more than MAX_IMAGE_PIXELS pixels.
  """
  if name is None:
    name = file if isinstance(file, str | os.PathLike) else "<file object>"
  try:
    if isinstance(file, str | os.PathLike) and os.path.getsize(file) == 0:
      raise UnreadableImageError(name, "empty file (0 bytes)")
    with Image.open(file) as image:
      _check_pixel_count(image)
      image.load()
      upright = ImageOps.exif_transpose(image)
      return to_rgb(upright)
  except _DECODE_ERRORS as error:
    raise UnreadableImageError(name, _describe_error(error)) from error


def resize_to_square(image: Image.Image, size: int) -> np.ndarray:
  """Center-crops an RGB image to a square and resizes it to size x size with Pillow bilinear.

  Pillow's bilinear filter widens its support when downscaling, so it antialiases.
  torchvision's Resize makes the same Pillow call for PIL images, so a square image gives the
  same pixels there. For a non-square image, torchvision's usual Resize then CenterCrop samples
  a slightly shifted grid, so its pixels can differ a little from this crop then resize.

  Returns:
    uint8 array [size, size, 3].
  """
  if image.mode != "RGB":
    raise ValueError(f"expected an RGB image, got mode {image.mode}")
  width, height = image.size
  side = min(width, height)
  left = (width - side) // 2
  top = (height - side) // 2
  square = image.crop((left, top, left + side, top + side))
  if square.size != (size, size):
    square = square.resize((size, size), Image.Resampling.BILINEAR)
  return np.asarray(square, dtype=np.uint8)


def read_image(path: str | os.PathLike, size: int) -> np.ndarray:
  """Reads an image file of any mode as a uint8 array [size, size, 3].

  See `open_rgb` for the conversion and `resize_to_square` for the crop and resize.

  Raises:
    UnreadableImageError: if the file cannot be decoded. The message names the path and reason.
  """
  return resize_to_square(open_rgb(path), size)


def verify_image(path: str | os.PathLike) -> None:
  """Checks an image file without decoding its pixels, which is much faster than `read_image`.

  Pillow's `verify` checks the PNG chunk checksums and catches truncated PNG files. It checks
  little in a JPEG file, so JPEG files are decoded instead, at 1/8 scale (JPEG's DCT scaling),
  which reads the whole compressed stream and catches truncated files. A file that is corrupt
  in ways that only a full decode notices can still fail later in `read_image`.

  Raises:
    UnreadableImageError: naming the path and the reason.
  """
  try:
    if os.path.getsize(path) == 0:
      raise UnreadableImageError(path, "empty file (0 bytes)")
    with Image.open(path) as image:
      _check_pixel_count(image)
      if image.format == "JPEG":
        image.draft("RGB", (1, 1))
        image.load()
      else:
        image.verify()
  except _DECODE_ERRORS as error:
    raise UnreadableImageError(path, _describe_error(error)) from error


def file_id(path: str | os.PathLike) -> str:
  """Returns the id of an image file: its name up to the first dot.

  "191.png" has id "191", and "10_0_0_2017.jpg.chip.jpg" has id "10_0_0_2017".
  """
  return Path(path).name.split(".", 1)[0]


def natural_sort_key(name: str) -> tuple:
  """Returns a sort key that orders digit runs by value, so that "2.png" sorts before "10.png"."""
  parts = re.split(r"(\d+)", name)
  # re.split with a capturing group puts text at even and digits at odd positions, so keys of
  # two names always compare str with str and int with int.
  key = [int(part) if index % 2 else part.lower() for index, part in enumerate(parts)]
  return (key, name)


def has_image_extension(name: str) -> bool:
  return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(
    directory: str | os.PathLike,
    exclude_ids: Iterable[str | int] = (),
) -> tuple[list[Path], list[Path]]:
  """Lists the image files directly inside a folder, in natural order.

  Subfolders are not searched. Symbolic links to files are followed. Links to folders, broken
  links and link loops are skipped.

  Args:
    directory: the folder to list.
    exclude_ids: file ids (see `file_id`) to leave out, as strings or ints.

  Returns:
    (kept, excluded): the image files whose id is not in `exclude_ids`, and those whose id is.

  Raises:
    DataError: if `directory` does not exist or is not a folder.
  """
  directory = Path(directory)
  if not directory.is_dir():
    problem = "is not a folder" if directory.exists() else "does not exist"
    raise DataError(
        f"Image folder {directory} {problem}. Pass an existing folder of PNG or JPEG images "
        "with --config.data.dir.")
  excluded_ids = {str(image_id) for image_id in exclude_ids}
  try:
    entries = os.scandir(directory)
  except PermissionError:
    raise DataError(
        f"Image folder {directory} is not readable: permission denied. Give the user running "
        "jaxgan read and execute permission on it, or pass another folder with "
        "--config.data.dir.") from None

  kept, excluded = [], []
  with entries:
    for entry in entries:
      if not has_image_extension(entry.name):
        continue
      try:
        is_file = entry.is_file()
      except OSError as error:  # A symbolic link loop raises ELOOP here.
        logging.warning("Skipping %s: %s", entry.path, error)
        continue
      if not is_file:
        continue
      path = Path(entry.path)
      if file_id(path) in excluded_ids:
        excluded.append(path)
      else:
        kept.append(path)

  kept.sort(key=lambda path: natural_sort_key(path.name))
  excluded.sort(key=lambda path: natural_sort_key(path.name))
  return kept, excluded


def map_in_threads(
    function: Callable[[_Item], _Result],
    items: Sequence[_Item],
    num_threads: int = 0,
) -> tuple[list[tuple[int, _Result]], list[tuple[int, str]]]:
  """Applies `function` to every item in a thread pool and collects UnreadableImageError.

  Args:
    function: called once per item. It may raise UnreadableImageError.
    items: the inputs, usually paths.
    num_threads: size of the thread pool, where 0 means `os.cpu_count()`.

  Returns:
    (results, failures): (index into items, result) for each success, and (index into items,
    reason) for each item that raised UnreadableImageError, both in input order.
  """
  num_threads = num_threads or os.cpu_count() or 1

  def call(item: _Item) -> tuple[_Result | None, str | None]:
    try:
      return function(item), None
    except UnreadableImageError as error:
      return None, error.reason

  results, failures = [], []
  with concurrent.futures.ThreadPoolExecutor(max_workers=num_threads) as executor:
    for index, (result, reason) in enumerate(executor.map(call, items)):
      if reason is None:
        results.append((index, result))
      else:
        failures.append((index, reason))
  return results, failures


def read_images(
    paths: Sequence[str | os.PathLike],
    size: int,
    num_threads: int = 0,
) -> tuple[np.ndarray, list[int], list[tuple[Path, str]]]:
  """Reads many image files with `read_image` in a thread pool, skipping unreadable ones.

  Args:
    paths: the files to read.
    size: height and width of the output images.
    num_threads: size of the thread pool, where 0 means `os.cpu_count()`.

  Returns:
    (images, kept, skipped): uint8 [len(kept), size, size, 3] in input order, the indices into
    `paths` of the images returned, and (path, reason) for each file that could not be read.
  """
  paths = [Path(path) for path in paths]
  images = np.empty((len(paths), size, size, 3), dtype=np.uint8)

  def read_into_row(index: int) -> None:
    images[index] = read_image(paths[index], size)

  # Each thread writes its own row, so the images are never held twice in memory.
  results, failures = map_in_threads(read_into_row, range(len(paths)), num_threads)
  kept = [index for index, _ in results]
  skipped = [(paths[index], reason) for index, reason in failures]

  # Move the readable images to the front in place instead of copying the array.
  for row, index in enumerate(kept):
    if row != index:
      images[row] = images[index]
  return images[:len(kept)], kept, skipped


def printable_name(path: str | os.PathLike) -> str:
  """Returns the file name of `path` with bytes that are not UTF-8 written as escapes (\\xff).

  Python decodes such bytes in file names to lone surrogates, which a UTF-8 log file rejects.
  """
  return os.fsencode(Path(path).name).decode("utf-8", "backslashreplace")


def log_skipped_files(skipped: Sequence[tuple[str | os.PathLike, str]], num_files: int,
                      location: str | os.PathLike) -> None:
  """Logs one warning that counts the unreadable files and names the first few with reasons."""
  if not skipped:
    return
  first_skipped = skipped[:_MAX_NAMED_SKIPPED]
  named = ", ".join(f"{printable_name(path)} ({reason})" for path, reason in first_skipped)
  more = len(skipped) - _MAX_NAMED_SKIPPED
  suffix = f", and {more} more" if more > 0 else ""
  logging.warning("Skipped %d of %d image files in %s that could not be read: %s%s",
                  len(skipped), num_files, location, named, suffix)
