"""Tests for image decoding, the folder source and the simpsons_faces TFDS builder."""

import io
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from jaxgan.data import folder
from jaxgan.data import images
from jaxgan.data import simpsons_faces_tfds
from jaxgan.errors import DataError

_EXIF_ORIENTATION = 0x0112


def _shared_data_dir() -> Path:
  if "JAXGAN_SHARED_DATA" in os.environ:
    return Path(os.environ["JAXGAN_SHARED_DATA"])
  return Path(__file__).resolve().parents[2] / "shared" / "data"


_SIMPSONS_FACES_DIR = _shared_data_dir() / "simpsons_faces"


def _save_rgb(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> Path:
  Image.new("RGB", size, color).save(path)
  return path


def _truncated_png(path: Path) -> Path:
  gradient = np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3) % 251
  Image.fromarray(gradient.astype(np.uint8)).save(path)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  return path


def _color_of(image_number: int) -> tuple[int, int, int]:
  return (image_number * 20 % 256, 255 - image_number * 20 % 256, image_number)


# read_image


def test_read_image_png_keeps_pixels(tmp_path):
  pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(tmp_path / "a.png")

  result = images.read_image(tmp_path / "a.png", 8)

  assert result.dtype == np.uint8
  np.testing.assert_array_equal(result, pixels)


def test_read_image_jpeg_resizes(tmp_path):
  _save_rgb(tmp_path / "a.jpg", (200, 50, 100), size=(32, 32))

  result = images.read_image(tmp_path / "a.jpg", 8)

  assert result.shape == (8, 8, 3)
  assert np.abs(result.astype(int) - [200, 50, 100]).max() <= 3


def test_read_image_grayscale(tmp_path):
  Image.new("L", (4, 4), 77).save(tmp_path / "gray.png")

  result = images.read_image(tmp_path / "gray.png", 4)

  assert result.shape == (4, 4, 3)
  assert (result == 77).all()


def test_read_image_rgba_over_black(tmp_path):
  rgba = np.zeros((2, 2, 4), dtype=np.uint8)
  rgba[0, 0] = (200, 100, 50, 128)
  rgba[0, 1] = (200, 100, 50, 255)
  rgba[1, 0] = (200, 100, 50, 0)
  Image.fromarray(rgba).save(tmp_path / "rgba.png")

  result = images.read_image(tmp_path / "rgba.png", 2)

  assert result[0, 0].tolist() == [100, 50, 25]
  assert result[0, 1].tolist() == [200, 100, 50]
  assert result[1, 0].tolist() == [0, 0, 0]


def test_read_image_palette(tmp_path):
  palette_image = Image.new("P", (2, 2), 0)
  palette_image.putpalette([5, 6, 7, 10, 20, 30] + [0] * (256 * 3 - 6))
  palette_image.putpixel((0, 0), 1)
  palette_image.save(tmp_path / "palette.png")

  result = images.read_image(tmp_path / "palette.png", 2)

  assert result[0, 0].tolist() == [10, 20, 30]
  assert result[1, 1].tolist() == [5, 6, 7]


def test_read_image_palette_transparency(tmp_path):
  palette_image = Image.new("P", (2, 2), 0)
  palette_image.putpalette([5, 6, 7, 10, 20, 30] + [0] * (256 * 3 - 6))
  palette_image.putpixel((0, 0), 1)
  palette_image.info["transparency"] = 0
  palette_image.save(tmp_path / "palette.png")

  result = images.read_image(tmp_path / "palette.png", 2)

  assert result[0, 0].tolist() == [10, 20, 30]
  assert result[1, 1].tolist() == [0, 0, 0]


def test_read_image_16_bit_scales(tmp_path):
  values = np.array([[65535, 257], [32896, 0]], dtype=np.uint16)
  Image.fromarray(values).save(tmp_path / "deep.png")
  assert Image.open(tmp_path / "deep.png").mode.startswith("I")

  result = images.read_image(tmp_path / "deep.png", 2)

  assert result[..., 0].tolist() == [[255, 1], [128, 0]]
  assert (result[..., 0] == result[..., 2]).all()


@pytest.mark.parametrize("mode, value, expected", [
    ("I", 65535, 255),
    ("I", 514, 2),
    ("F", 0.5, 128),
    ("F", 200.0, 200),
])
def test_to_rgb_integer_and_float_modes(mode, value, expected):
  dtype = np.int32 if mode == "I" else np.float32
  image = Image.fromarray(np.full((2, 2), value, dtype=dtype))
  assert image.mode == mode

  result = np.asarray(images.to_rgb(image))

  assert result.shape == (2, 2, 3)
  assert (result == expected).all()


def test_read_image_cmyk_jpeg(tmp_path):
  Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")

  result = images.read_image(tmp_path / "cmyk.jpg", 4)

  assert result.shape == (4, 4, 3)
  assert result[..., 0].min() > 240  # Red: no cyan ink.
  assert result[..., 1].max() < 15


def test_read_image_center_crops_wide(tmp_path):
  wide = np.zeros((10, 30, 3), dtype=np.uint8)
  wide[:, :10] = (255, 0, 0)
  wide[:, 10:20] = (0, 255, 0)
  wide[:, 20:] = (0, 0, 255)
  Image.fromarray(wide).save(tmp_path / "wide.png")

  result = images.read_image(tmp_path / "wide.png", 10)

  assert (result == (0, 255, 0)).all()


def test_read_image_center_crops_tall(tmp_path):
  tall = np.zeros((30, 10, 3), dtype=np.uint8)
  tall[10:20] = (0, 255, 0)
  Image.fromarray(tall).save(tmp_path / "tall.png")

  result = images.read_image(tmp_path / "tall.png", 5)

  assert (result == (0, 255, 0)).all()


def test_read_image_applies_exif_rotation(tmp_path):
  # Stored 40 wide and 20 high: red left half, blue right half. Orientation 6 means the
  # stored left edge is the top of the upright image, which is 20 wide and 40 high.
  stored = np.zeros((20, 40, 3), dtype=np.uint8)
  stored[:, :20] = (255, 0, 0)
  stored[:, 20:] = (0, 0, 255)
  exif = Image.Exif()
  exif[_EXIF_ORIENTATION] = 6
  Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)

  result = images.read_image(tmp_path / "rotated.jpg", 20).astype(int)

  assert result.shape == (20, 20, 3)
  top_row, bottom_row = result[0], result[-1]
  assert (top_row[:, 0] > 200).all()  # Red on top.
  assert (top_row[:, 2] < 60).all()
  assert (bottom_row[:, 2] > 200).all()  # Blue at the bottom.
  assert (bottom_row[:, 0] < 60).all()


@pytest.mark.parametrize("case", ["truncated", "zero_bytes", "text", "missing"])
def test_read_image_unreadable(tmp_path, case):
  path = tmp_path / f"{case}.png"
  if case == "truncated":
    _truncated_png(path)
  elif case == "zero_bytes":
    path.write_bytes(b"")
  elif case == "text":
    path.write_text("this is not an image\n")

  with pytest.raises(images.UnreadableImageError) as error_info:
    images.read_image(path, 8)

  assert str(path) in str(error_info.value)
  assert error_info.value.reason


def test_read_image_pixel_limit(tmp_path, monkeypatch):
  _save_rgb(tmp_path / "big.png", (1, 2, 3), size=(20, 20))
  monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100)

  with pytest.raises(images.UnreadableImageError, match="decompression bomb"):
    images.read_image(tmp_path / "big.png", 8)


def test_read_image_pillow_bomb_error(tmp_path, monkeypatch):
  _save_rgb(tmp_path / "big.png", (1, 2, 3), size=(40, 40))
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

  with pytest.raises(images.UnreadableImageError, match="decompression bomb"):
    images.read_image(tmp_path / "big.png", 8)


def test_verify_image_truncated_png(tmp_path):
  _truncated_png(tmp_path / "broken.png")

  with pytest.raises(images.UnreadableImageError):
    images.verify_image(tmp_path / "broken.png")


# Listing and batch reading


@pytest.mark.parametrize("name, expected", [
    ("191.png", "191"),
    ("10_0_0_2017.jpg.chip.jpg", "10_0_0_2017"),
    ("face", "face"),
])
def test_file_id(name, expected):
  assert images.file_id(Path("/some/folder") / name) == expected


def test_list_image_files_natural_order(tmp_path):
  for name in ["10.png", "2.png", "1.PNG", "b.jpeg", "a.jpg", "notes.txt"]:
    (tmp_path / name).write_bytes(b"x")
  (tmp_path / "folder.png").mkdir()
  (tmp_path / "nested").mkdir()
  (tmp_path / "nested" / "3.png").write_bytes(b"x")
  (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
  (tmp_path / "broken.png").symlink_to(tmp_path / "absent.png")

  kept, excluded = images.list_image_files(tmp_path)

  assert [path.name for path in kept] == ["1.PNG", "2.png", "10.png", "a.jpg", "b.jpeg"]
  assert excluded == []


def test_list_image_files_excludes_ids(tmp_path):
  for name in ["1.png", "2.png", "10.png", "a.jpg"]:
    (tmp_path / name).write_bytes(b"x")

  kept, excluded = images.list_image_files(tmp_path, exclude_ids=(2, "a", "99"))

  assert [path.name for path in kept] == ["1.png", "10.png"]
  assert [path.name for path in excluded] == ["2.png", "a.jpg"]


def test_list_image_files_missing_folder(tmp_path):
  with pytest.raises(DataError, match="does not exist") as error_info:
    images.list_image_files(tmp_path / "absent")

  assert "--config.data.dir" in str(error_info.value)


def test_list_image_files_not_a_folder(tmp_path):
  (tmp_path / "file.png").write_bytes(b"x")

  with pytest.raises(DataError, match="is not a folder"):
    images.list_image_files(tmp_path / "file.png")


def test_read_images_skips_unreadable(tmp_path):
  paths = [
      _save_rgb(tmp_path / "1.png", (10, 20, 30)),
      _truncated_png(tmp_path / "2.png"),
      _save_rgb(tmp_path / "3.png", (40, 50, 60)),
  ]

  decoded, kept, skipped = images.read_images(paths, 4, num_threads=2)

  assert decoded.shape == (2, 4, 4, 3)
  assert kept == [0, 2]
  assert [path for path, _ in skipped] == [paths[1]]
  assert (decoded[0] == (10, 20, 30)).all()
  assert (decoded[1] == (40, 50, 60)).all()


# Folder source


@pytest.fixture(name="face_folder")
def fixture_face_folder(tmp_path) -> Path:
  """A folder of 1.png ... 10.png in which 4.png is truncated. Each image has its own color."""
  directory = tmp_path / "faces"
  directory.mkdir()
  for number in range(1, 11):
    _save_rgb(directory / f"{number}.png", _color_of(number))
  _truncated_png(directory / "4.png")
  return directory


@pytest.mark.parametrize("cache_max_bytes", [4 << 30, 1], ids=["cached", "streaming"])
def test_folder_source_skips_and_excludes(face_folder, caplog, cache_max_bytes):
  with caplog.at_level(logging.WARNING):
    image_source = folder.make_source(
        face_folder, 8, exclude_ids=("2", "7"), cache_max_bytes=cache_max_bytes, num_threads=2)

  assert image_source.num_images == 7
  assert image_source.ids == ("1", "3", "5", "6", "8", "9", "10")
  assert image_source.image_size == 8
  assert image_source.name == f"folder {face_folder} (7 images, 8x8)"
  warnings = [record.getMessage() for record in caplog.records
              if record.levelno == logging.WARNING]
  assert len(warnings) == 1
  assert "Skipped 1 of 8 image files" in warnings[0]
  assert "4.png" in warnings[0]

  batch = image_source.read(np.array([0, 6, 0]))
  assert batch.shape == (3, 8, 8, 3)
  assert batch.dtype == np.uint8
  assert (batch[0] == _color_of(1)).all()
  assert (batch[1] == _color_of(10)).all()
  np.testing.assert_array_equal(batch[2], batch[0])


def test_folder_source_streaming_file_breaks(face_folder):
  image_source = folder.make_source(face_folder, 8, cache_max_bytes=1, num_threads=2)
  (face_folder / "3.png").write_text("overwritten\n")

  with pytest.raises(DataError, match="3.png"):
    image_source.read(np.array([0, 1, 2]))


def test_folder_source_too_few_images(face_folder):
  with pytest.raises(DataError, match="Only 7 readable images") as error_info:
    folder.make_source(face_folder, 8, exclude_ids=("2", "7"), min_images=8)

  assert "--config.data.batch_size" in str(error_info.value)


def test_folder_source_all_excluded(tmp_path):
  _save_rgb(tmp_path / "191.png", (1, 2, 3))

  with pytest.raises(DataError, match="Only 0 readable images"):
    folder.make_source(tmp_path, 8, exclude_ids=("191",))


@pytest.mark.parametrize("content", [[], ["notes.txt"]], ids=["empty", "no_images"])
def test_folder_source_no_image_files(tmp_path, content):
  for name in content:
    (tmp_path / name).write_text("x")

  with pytest.raises(DataError, match="No image files") as error_info:
    folder.make_source(tmp_path, 8)

  assert ".png" in str(error_info.value)
  assert str(tmp_path) in str(error_info.value)


@pytest.mark.skipif(not _SIMPSONS_FACES_DIR.is_dir(),
                    reason=f"shared data folder {_SIMPSONS_FACES_DIR} is absent")
def test_folder_source_simpsons_faces():
  image_source = folder.make_source(
      _SIMPSONS_FACES_DIR, 32, exclude_ids=simpsons_faces_tfds.NON_FACE_IDS)

  assert image_source.num_images == 989
  assert image_source.ids[:3] == ("1", "2", "3")
  assert "191" not in image_source.ids
  assert "803" not in image_source.ids
  batch = image_source.read(np.arange(4))
  assert batch.shape == (4, 32, 32, 3)
  assert batch.dtype == np.uint8


# TFDS builder

_TFDS_FILE_NUMBERS = list(range(1, 21)) + [191]


@pytest.fixture(name="face_pngs", scope="module")
def fixture_face_pngs() -> dict[str, bytes]:
  """PNG files 1.png ... 20.png and the non-face 191.png, from the shared data if present.

  Without the shared data, synthetic 200x200 PNG files with the same names stand in.
  """
  pngs = {}
  for number in _TFDS_FILE_NUMBERS:
    shared_file = _SIMPSONS_FACES_DIR / f"{number}.png"
    if shared_file.is_file():
      pngs[f"{number}.png"] = shared_file.read_bytes()
      continue
    rows = np.linspace(0, 255, 200, dtype=np.uint8)[:, None, None]
    synthetic = np.broadcast_to(rows, (200, 200, 3)).copy()
    synthetic[..., 1] = number
    encoded = io.BytesIO()
    Image.fromarray(synthetic).save(encoded, format="PNG")
    pngs[f"{number}.png"] = encoded.getvalue()
  return pngs


def _write_cropped_folder(directory: Path, pngs: dict[str, bytes]) -> Path:
  cropped = directory / "cropped"
  cropped.mkdir(parents=True)
  for name, data in pngs.items():
    (cropped / name).write_bytes(data)
  return cropped


@pytest.fixture(name="built_tfds", scope="module")
def fixture_built_tfds(tmp_path_factory, face_pngs) -> tuple[Path, Path]:
  """Builds simpsons_faces once from a cropped/ folder and returns (TFDS data dir, cropped/)."""
  root = tmp_path_factory.mktemp("tfds_from_folder")
  cropped = _write_cropped_folder(root / "manual", face_pngs)
  simpsons_faces_tfds.make_source(8, data_dir=str(root / "tfds"), manual_dir=str(root / "manual"))
  return root / "tfds", cropped


def test_tfds_builder_name():
  assert simpsons_faces_tfds.SimpsonsFaces.name == "simpsons_faces"
  assert str(simpsons_faces_tfds.SimpsonsFaces.VERSION) == "1.0.0"
  assert {191, 388, 9746, 1272}.issubset(simpsons_faces_tfds.NON_FACE_IDS)
  assert len(simpsons_faces_tfds.NON_FACE_IDS) == 84


def test_tfds_source_from_cropped_folder(built_tfds):
  data_dir, cropped = built_tfds

  # The manual folder is not needed once the dataset is built.
  image_source = simpsons_faces_tfds.make_source(16, data_dir=str(data_dir), manual_dir=None)

  assert image_source.num_images == 20
  assert image_source.ids == tuple(str(number) for number in range(1, 21))
  assert image_source.name == "tfds simpsons_faces:1.0.0 train (20 images, 16x16)"
  batch = image_source.read(np.arange(20))
  assert batch.shape == (20, 16, 16, 3)
  # The TFDS path must give the same pixels as the folder source for the same files.
  folder_source = folder.make_source(
      cropped, 16, exclude_ids=simpsons_faces_tfds.NON_FACE_IDS, num_threads=2)
  np.testing.assert_array_equal(batch, folder_source.read(np.arange(20)))


def test_tfds_builder_stores_full_size(built_tfds):
  data_dir, _ = built_tfds
  builder = simpsons_faces_tfds.SimpsonsFaces(data_dir=str(data_dir))

  examples = list(tfds.as_numpy(builder.as_dataset(split="train")))

  assert sorted(int(example["id"]) for example in examples) == list(range(1, 21))
  example = next(example for example in examples if example["id"] == 5)
  assert example["file_name"] == b"5.png"
  assert example["image"].shape == (200, 200, 3)


def test_tfds_source_too_few_images(built_tfds):
  data_dir, _ = built_tfds

  with pytest.raises(DataError, match="Only 20 images") as error_info:
    simpsons_faces_tfds.make_source(8, data_dir=str(data_dir), manual_dir=None, min_images=64)

  assert "--config.data.batch_size" in str(error_info.value)


def test_tfds_source_from_zip(tmp_path, face_pngs, caplog):
  manual_dir = tmp_path / "manual"
  manual_dir.mkdir()
  with zipfile.ZipFile(manual_dir / "archive.zip", "w") as archive:
    for name, data in face_pngs.items():
      archive.writestr(f"cropped/{name}", data)
    archive.writestr("cropped/21.png", face_pngs["1.png"][:200])  # Truncated.
    archive.writestr("__MACOSX/cropped/._1.png", b"resource fork")
    archive.writestr("readme.txt", "not an image")

  with caplog.at_level(logging.WARNING):
    image_source = simpsons_faces_tfds.make_source(
        16, data_dir=str(tmp_path / "tfds"), manual_dir=str(manual_dir))

  assert image_source.num_images == 20
  assert image_source.ids == tuple(str(number) for number in range(1, 21))
  assert image_source.read(np.array([0, 19])).shape == (2, 16, 16, 3)
  warnings = [record.getMessage() for record in caplog.records
              if record.getMessage().startswith("Skipped")]
  assert len(warnings) == 1
  assert "Skipped 1 of 21 image files" in warnings[0]
  assert "21.png (image file is truncated)" in warnings[0]


def test_tfds_source_missing_manual_dir(tmp_path):
  with pytest.raises(DataError, match="manual download folder") as error_info:
    simpsons_faces_tfds.make_source(
        16, data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "absent"))

  assert str(tmp_path / "absent") in str(error_info.value)
  assert "kostastokis" in str(error_info.value)


def test_tfds_source_manual_dir_without_images(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "notes.txt").write_text("x")

  with pytest.raises(DataError, match="No Simpsons Faces images"):
    simpsons_faces_tfds.make_source(
        16, data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "manual"))


def test_tfds_source_no_readable_images(tmp_path):
  (tmp_path / "manual").mkdir()
  _truncated_png(tmp_path / "manual" / "1.png")

  with pytest.raises(DataError, match="None of the 1 image files"):
    simpsons_faces_tfds.make_source(
        16, data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "manual"))
