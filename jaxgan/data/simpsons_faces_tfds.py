"""TFDS builder `simpsons_faces` for the Kaggle "Simpsons Faces" set, and a source built on it.

Importing this module registers the builder with TFDS. TensorFlow itself is imported only when
a builder is created, and then with accelerators hidden from it, so that it leaves the GPUs to
JAX.
"""

import dataclasses
import io
import os
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from jaxgan.data import images
from jaxgan.data import source
from jaxgan.data import tf_setup
from jaxgan.errors import DataError

HOMEPAGE = "https://www.kaggle.com/datasets/kostastokis/simpsons-faces"

# Images of the Kaggle set that show no usable face: background, food, animals, text or tiny
# figures, found by visual inspection. 388, 735 and 803 come from our own check of images
# 1-1000. The others are the exclusion list in simpsons_dataset.txt of the GitHub project
# gsurma/image_generator.
NON_FACE_IDS: frozenset[int] = frozenset({
    191, 242, 314, 684, 691, 736, 737, 772, 388, 735, 803,
    9746, 9731, 9717, 9684, 9637, 9641, 9642, 9584, 9541, 9535, 9250, 9251, 9252, 9043, 8593,
    8584, 8052, 8051, 8008, 7957, 7958, 7761, 7762, 9510, 9307, 4848, 4791, 4785, 4465, 2709,
    7724, 7715, 7309, 7064, 7011, 6961, 6962, 6963, 6960, 6949, 6662, 6496, 6409, 6411, 6406,
    6407, 6170, 6171, 6172, 5617, 4363, 4232, 4086, 4047, 3894, 3889, 3493, 3393, 3362, 2780,
    2710, 2707, 2708, 2711, 2712, 2309, 2056, 1943, 1760, 1743, 1702, 1281, 1272,
})

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the Kaggle "Simpsons Faces" dataset by kostastokis from {HOMEPAGE} (a Kaggle account is
needed). Then place one of these in the manual folder:
  * the downloaded zip archive, under any name ending in .zip. The archive contains a folder
    cropped/ with the images 1.png ... 9877.png.
  * the extracted cropped/ folder.
  * the PNG files themselves, named by their number (1.png, 2.png, ...).
"""

# Number of images decoded together while the dataset is generated, which bounds memory use.
_CHUNK_SIZE = 256

# Errors that reading one archive member can raise for a damaged archive.
_ARCHIVE_READ_ERRORS = (OSError, zipfile.BadZipFile, zlib.error, EOFError)


@dataclasses.dataclass(frozen=True)
class _ImageFile:
  """One input image: a file in a folder or a member of a zip archive."""

  file_name: str
  location: str  # The path, or "archive.zip:member", for messages.
  read_bytes: Callable[[], bytes]


def _describe_missing_input(manual_dir: Path) -> str:
  return (f"No Simpsons Faces images found in the manual download folder {manual_dir}. "
          f"{_MANUAL_DOWNLOAD_INSTRUCTIONS}")


def _folder_image_files(folder: Path) -> list[_ImageFile]:
  paths, _ = images.list_image_files(folder)
  return [
      _ImageFile(file_name=path.name, location=str(path), read_bytes=path.read_bytes)
      for path in paths
  ]


def _archive_image_files(archive_path: Path, archive: zipfile.ZipFile) -> list[_ImageFile]:
  """Lists the images under a cropped/ folder in the archive, or else every PNG member."""
  candidates = []
  for info in archive.infolist():
    member = PurePosixPath(info.filename)
    # Archives made on macOS carry "__MACOSX/..." and "._name" resource files next to the images.
    if info.is_dir() or "__MACOSX" in member.parts or member.name.startswith("._"):
      continue
    candidates.append(info.filename)
  cropped = [name for name in candidates
             if "cropped" in PurePosixPath(name).parts[:-1] and images.has_image_extension(name)]
  selected = cropped or [name for name in candidates if name.lower().endswith(".png")]
  selected.sort(key=images.natural_sort_key)
  return [
      _ImageFile(
          file_name=PurePosixPath(name).name,
          location=f"{archive_path}:{name}",
          read_bytes=lambda name=name: archive.read(name),
      )
      for name in selected
  ]


def _select_input(manual_dir: Path) -> tuple[str, list[_ImageFile], zipfile.ZipFile | None]:
  """Finds the images in the manual folder and returns (location, files, open archive or None).

  A cropped/ folder wins over PNG files directly in the manual folder, which win over a zip
  archive.
  """
  cropped = manual_dir / "cropped"
  if cropped.is_dir():
    return str(cropped), _folder_image_files(cropped), None
  direct = _folder_image_files(manual_dir)
  if direct:
    return str(manual_dir), direct, None

  archives = sorted(path for path in manual_dir.iterdir()
                    if path.suffix.lower() == ".zip" and path.is_file())
  if not archives:
    raise DataError(_describe_missing_input(manual_dir))
  if len(archives) > 1:
    raise DataError(
        f"Found {len(archives)} zip archives in the manual download folder {manual_dir}: "
        f"{', '.join(path.name for path in archives)}. Keep only the Simpsons Faces archive.")
  try:
    archive = zipfile.ZipFile(archives[0])
  except (OSError, zipfile.BadZipFile) as error:
    raise DataError(
        f"Cannot open the zip archive {archives[0]}: {error}. Download it again.") from error
  files = _archive_image_files(archives[0], archive)
  if not files:
    archive.close()
    raise DataError(f"The zip archive {archives[0]} contains no PNG images. "
                    f"{_MANUAL_DOWNLOAD_INSTRUCTIONS}")
  return str(archives[0]), files, archive


def _number_and_filter(
    files: list[_ImageFile],
    location: str,
) -> tuple[list[tuple[int, _ImageFile]], list[tuple[str, str]]]:
  """Parses the number in each file name and drops non-faces and duplicate numbers.

  Returns:
    (kept, skipped): (file number, file) for the files to store, and (location, reason) for
    the files whose name is not a number.
  """
  kept, skipped, excluded, duplicates = [], [], [], []
  seen = set()
  for file in files:
    stem = images.file_id(file.file_name)
    if not stem.isdigit():
      skipped.append((file.location, "file name is not a number"))
      continue
    image_id = int(stem)
    if image_id in NON_FACE_IDS:
      excluded.append(image_id)
    elif image_id in seen:
      duplicates.append(file.location)
    else:
      seen.add(image_id)
      kept.append((image_id, file))
  if excluded:
    logging.info("Excluded %d known non-face images in %s", len(excluded), location)
  if duplicates:
    logging.warning("Skipped %d images in %s whose number appeared before, for example %s",
                    len(duplicates), location, duplicates[0])
  return kept, skipped


def _decode_full_size(data_and_location: tuple[bytes, str]) -> np.ndarray:
  data, location = data_and_location
  if not data:
    raise images.UnreadableImageError(location, "empty file (0 bytes)")
  return np.asarray(images.open_rgb(io.BytesIO(data), location))


def _read_files(
    files: list[_ImageFile],
) -> tuple[list[tuple[bytes, str]], list[int], list[tuple[str, str]]]:
  """Reads the raw bytes of each file in the calling thread, because ZipFile is shared.

  Returns:
    (contents, indices, failed): (bytes, location) of each file read, its index into `files`,
    and (location, reason) for each file that could not be read.
  """
  contents, indices, failed = [], [], []
  for index, file in enumerate(files):
    try:
      contents.append((file.read_bytes(), file.location))
      indices.append(index)
    except _ARCHIVE_READ_ERRORS as error:
      failed.append((file.location, str(error)))
  return contents, indices, failed


class SimpsonsFaces(tfds.core.GeneratorBasedBuilder):
  """Simpsons Faces by kostastokis: cropped faces of characters from The Simpsons.

  Images are stored at their original size (200x200 in the Kaggle set) as RGB PNG. Known
  non-face images (NON_FACE_IDS) and unreadable files are left out.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

  def __init__(self, **kwargs):
    tf_setup.import_tensorflow()
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("Cropped faces of The Simpsons characters from the Kaggle dataset "
                     "'Simpsons Faces' by kostastokis, without known non-face images."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "id": np.int64,
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage=HOMEPAGE,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      manual_dir = Path(dl_manager.manual_dir)
    except AssertionError as error:
      raise DataError(f"The manual download folder for simpsons_faces is missing or empty. "
                      f"{error}") from error
    location, files, archive = _select_input(manual_dir)
    return {"train": self._generate_examples(location, files, archive)}

  def _generate_examples(self, location: str, files: list[_ImageFile],
                         archive: zipfile.ZipFile | None) -> Iterator[tuple[int, dict]]:
    """Yields (file number, example) for every readable face image, decoding in threads."""
    try:
      files, skipped = _number_and_filter(files, location)
      # Excluded non-faces and duplicates are not counted as files that could not be read.
      num_files = len(files) + len(skipped)
      num_yielded = 0
      for start in range(0, len(files), _CHUNK_SIZE):
        chunk = files[start:start + _CHUNK_SIZE]
        contents, indices, failed = _read_files([file for _, file in chunk])
        skipped.extend(failed)
        decoded, failures = images.map_in_threads(_decode_full_size, contents)
        skipped.extend((contents[index][1], reason) for index, reason in failures)
        for content_index, pixels in decoded:
          image_id, file = chunk[indices[content_index]]
          num_yielded += 1
          yield image_id, {
              "image": pixels,
              "id": image_id,
              "file_name": file.file_name,
          }
      images.log_skipped_files(skipped, num_files, location)
      if num_files == 0:
        raise DataError(f"{location} contains only known non-face images (NON_FACE_IDS). "
                        f"{_MANUAL_DOWNLOAD_INSTRUCTIONS}")
      if num_yielded == 0:
        raise DataError(f"None of the {num_files} image files in {location} could be read. "
                        "Download the dataset again.")
    finally:
      if archive is not None:
        archive.close()


def _default_manual_dir(builder: SimpsonsFaces) -> Path:
  # The same default that TFDS uses when DownloadConfig.manual_dir is not set.
  return Path(builder.data_dir_root) / "downloads" / "manual"


def make_source(
    image_size: int,
    data_dir: str | None,
    manual_dir: str | None,
    min_images: int = 1,
) -> source.ImageSource:
  """Creates an image source from the `simpsons_faces` TFDS dataset, building it if needed.

  Building reads the Kaggle download from `manual_dir` (see SimpsonsFaces.
  MANUAL_DOWNLOAD_INSTRUCTIONS) and writes the dataset under `data_dir`. Once built, the manual
  folder is not read again. Images are center-cropped and resized like the folder source (see
  `images.resize_to_square`) and held in memory, ordered by file number.

  Args:
    image_size: height and width in pixels of the images that the source returns.
    data_dir: the TFDS data folder. None means TFDS's default (TFDS_DATA_DIR or
      ~/tensorflow_datasets).
    manual_dir: the folder with the Kaggle download. None means <data_dir>/downloads/manual.
    min_images: the smallest number of images that the run can use.

  Raises:
    DataError: if the dataset is not built and the manual folder is missing, empty or contains
      no readable images, or if the dataset has fewer than `min_images` images.
  """
  builder = SimpsonsFaces(data_dir=data_dir)
  if not builder.is_prepared():
    manual_path = Path(manual_dir) if manual_dir is not None else _default_manual_dir(builder)
    if not manual_path.is_dir() or not any(manual_path.iterdir()):
      problem = "does not exist" if not manual_path.exists() else "is empty or not a folder"
      raise DataError(
          f"The simpsons_faces dataset is not built yet in {builder.data_dir_root}, and its "
          f"manual download folder {manual_path} {problem}. {_MANUAL_DOWNLOAD_INSTRUCTIONS}")
    logging.info("Building the simpsons_faces dataset in %s from %s", builder.data_dir_root,
                 manual_path)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_path)))

  num_images = builder.info.splits["train"].num_examples
  if num_images < min_images:
    raise DataError(
        f"Only {num_images} images in the simpsons_faces dataset in {builder.data_dir}, but the "
        f"run needs at least {min_images}, one global batch. Lower --config.data.batch_size.")

  resized = np.empty((num_images, image_size, image_size, 3), dtype=np.uint8)
  ids = np.empty((num_images,), dtype=np.int64)
  dataset = builder.as_dataset(split="train", shuffle_files=False)
  for row, example in enumerate(tfds.as_numpy(dataset)):
    resized[row] = images.resize_to_square(Image.fromarray(example["image"]), image_size)
    ids[row] = example["id"]

  # TFDS stores examples in the order of a hash of their keys, so sort them by file number.
  order = np.argsort(ids, kind="stable")
  name = (f"tfds simpsons_faces:{builder.version} train ({num_images} images, "
          f"{image_size}x{image_size})")
  return source.from_array(name, resized[order], tuple(str(image_id) for image_id in ids[order]))
