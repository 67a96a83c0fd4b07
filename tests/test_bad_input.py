"""Tests that bad images and bad config values end in a skip with a count or one clear error.

Includes property-based tests (hypothesis) of the config override parsing and the image reader.
"""

import io
import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import hypothesis
import jax
import numpy as np
import pytest
from absl import flags
from hypothesis import strategies as st
from PIL import Image

from jaxgan import main
from jaxgan import parallel
from jaxgan import train
from jaxgan.data import folder
from jaxgan.data import images
from jaxgan.errors import ConfigError
from jaxgan.errors import DataError
from jaxgan.errors import JaxganError

REPO = Path(__file__).resolve().parents[1]


def _png_bytes(size=(16, 16), mode="RGB", color=(200, 40, 10)) -> bytes:
  buffer = io.BytesIO()
  Image.new(mode, size, color).save(buffer, format="PNG")
  return buffer.getvalue()


def _jpeg_bytes(size=(64, 64)) -> bytes:
  gradient = np.arange(size[0] * size[1] * 3, dtype=np.uint32).reshape(size[1], size[0], 3)
  buffer = io.BytesIO()
  Image.fromarray((gradient % 251).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


# Images


def test_truncated_jpeg_unreadable(tmp_path):
  path = tmp_path / "cut.jpg"
  data = _jpeg_bytes()
  path.write_bytes(data[:len(data) // 2])

  with pytest.raises(images.UnreadableImageError, match="cut.jpg"):
    images.read_image(path, 16)
  with pytest.raises(images.UnreadableImageError, match="truncated"):
    images.verify_image(path)


def test_png_named_jpg_converted(tmp_path):
  path = tmp_path / "really_a_png.jpg"
  path.write_bytes(_png_bytes(color=(1, 2, 3)))

  result = images.read_image(path, 16)

  assert (result == (1, 2, 3)).all()


def test_tiny_image_upscaled(tmp_path):
  path = tmp_path / "tiny.png"
  path.write_bytes(_png_bytes(size=(8, 8), color=(9, 99, 199)))

  result = images.read_image(path, 32)

  assert result.shape == (32, 32, 3)
  assert (result == (9, 99, 199)).all()


_BOMB_SCRIPT = """
import sys
from PIL import Image
from jaxgan.data import images
Image.MAX_IMAGE_PIXELS = 100
try:
  images.read_image(sys.argv[1], 8)
except images.UnreadableImageError as error:
  print("unreadable:", error.reason)
"""


def test_pillow_bomb_warning_is_error(tmp_path):
  # 12x12 = 144 pixels is between Pillow's limit (100) and twice it, where Pillow only warns.
  # pytest resets warning filters for each test, so the check runs in a fresh interpreter.
  path = tmp_path / "big.png"
  path.write_bytes(_png_bytes(size=(12, 12)))

  result = subprocess.run([sys.executable, "-c", _BOMB_SCRIPT, str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True)

  assert "unreadable: too many pixels, possibly a decompression bomb" in result.stdout
  assert "Warning" not in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_unreadable_permissions_skipped(tmp_path):
  path = tmp_path / "secret.png"
  path.write_bytes(_png_bytes())
  path.chmod(0)
  try:
    if os.access(path, os.R_OK):
      pytest.skip("running as root: a file with mode 000 stays readable")
    with pytest.raises(images.UnreadableImageError, match="Permission denied"):
      images.read_image(path, 8)
  finally:
    path.chmod(0o644)


@pytest.fixture(name="mixed_folder")
def fixture_mixed_folder(tmp_path, monkeypatch) -> Path:
  """A folder with 8 images that convert and 5 files that are skipped as unreadable.

  huge.png counts as too large because the pixel limit is lowered to 100,000 (about 316x316).
  """
  monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100_000)
  directory = tmp_path / "mixed"
  directory.mkdir()
  converted = {
      "rgb.png": _png_bytes(),
      "gray.png": _png_bytes(mode="L", color=128),
      "rgba.png": _png_bytes(mode="RGBA", color=(255, 0, 0, 128)),
      "palette.png": _png_bytes(mode="P", color=3),
      "tiny.png": _png_bytes(size=(8, 8)),
      "wide.jpg": _jpeg_bytes(size=(64, 24)),
      "png_named.jpg": _png_bytes(),
  }
  for name, data in converted.items():
    (directory / name).write_bytes(data)
  Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16)).save(directory / "deep.png")
  # A file name that is not valid UTF-8.
  with open(os.path.join(os.fsencode(directory), b"\xff\xfename.png"), "wb") as file:
    file.write(_png_bytes()[:40])
  jpeg = _jpeg_bytes()
  (directory / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
  (directory / "empty.png").write_bytes(b"")
  (directory / "text.png").write_text("not an image\n")
  (directory / "loop.png").symlink_to(directory / "loop.png")
  (directory / "dangling.png").symlink_to(directory / "absent.png")
  (directory / "huge.png").write_bytes(_png_bytes(size=(400, 400)))
  return directory


@pytest.mark.parametrize("cache_max_bytes", [4 << 30, 1], ids=["cached", "streaming"])
def test_folder_mixed_files_skipped_with_count(mixed_folder, caplog, cache_max_bytes):
  with caplog.at_level(logging.WARNING):
    image_source = folder.make_source(mixed_folder, 16, cache_max_bytes=cache_max_bytes,
                                      num_threads=2)

  assert image_source.num_images == 8
  assert "deep" in image_source.ids
  batch = image_source.read(np.arange(8))
  assert batch.shape == (8, 16, 16, 3)
  skipped = [r.getMessage() for r in caplog.records if "Skipped" in r.getMessage()]
  assert len(skipped) == 1
  assert "Skipped 5 of 13 image files" in skipped[0]
  assert "\\xff\\xfename.png" in skipped[0]
  skipped[0].encode("utf-8")  # No lone surrogates from the non-UTF-8 name.


def test_folder_too_few_for_batch_rejected(mixed_folder):
  with pytest.raises(DataError, match="Only 8 readable images") as error:
    folder.make_source(mixed_folder, 16, min_images=16)

  assert "5 unreadable" in str(error.value)
  assert "--config.data.batch_size" in str(error.value)


# Config values


def _tiny_config():
  sys.path.insert(0, str(REPO))
  from configs import default  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  return default.get_config("tiny")


@pytest.mark.parametrize("key, value, expected", [
    ("optim.lr_d", 0.0, "optim.lr_d=0.0"),
    ("optim.lr_g", -1e-4, "optim.lr_g=-0.0001"),
    ("loss.g_threshold", 1.5, "loss.g_threshold=1.5"),
    ("loss.g_threshold", -0.1, "loss.g_threshold=-0.1"),
    ("train.on_nonfinite", "retry", "train.on_nonfinite='retry'"),
    ("train.rollback_lr_factor", 1.0, "train.rollback_lr_factor=1.0"),
    ("train.max_rollbacks", -1, "train.max_rollbacks=-1"),
])
def test_validate_config_rejects_value(key, value, expected):
  config = _tiny_config()
  section, name = key.split(".")
  config[section][name] = value

  with pytest.raises(ConfigError, match=expected.replace(".", r"\.").replace("(", r"\(")):
    train.validate_config(config)


def test_image_size_architecture_cannot_make():
  config = _tiny_config()
  config.model.arch = "reproduct"
  config.data.image_size = 40

  with pytest.raises(ConfigError, match="multiple of 16") as error:
    train.validate_config(config)

  assert "data.image_size=40" in str(error.value)


def test_batch_not_divisible_by_devices(monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 4)

  with pytest.raises(ConfigError, match="data.batch_size=18") as error:
    parallel.check_batch_size(18)

  assert "divisible by the number of devices (4)" in str(error.value)


def test_missing_data_folder_leaves_no_workdir(tmp_path):
  config = _tiny_config()
  config.data.source = "folder"
  config.data.dir = str(tmp_path / "absent")

  with pytest.raises(DataError, match="does not exist"):
    train.train_and_evaluate(config, str(tmp_path / "run"))

  assert not (tmp_path / "run").exists()


# The command line, in process


def _parse_and_validate(*overrides: str, workdir: str = "/nonexistent/run"):
  """Parses flags as `jaxgan.main` does and validates the config; returns the config.

  Raises SystemExit(2) for what main reports as a flag error, ConfigError for invalid values.
  """
  argv = ["jaxgan", "--config", "configs/default.py:tiny", "--workdir", workdir, *overrides]
  try:
    with mock.patch.object(sys, "argv", argv):
      main.parse_flags(argv)
      config = main.load_config()
    train.validate_config(config)
    return config
  finally:
    flags.FLAGS.unparse_flags()


@pytest.fixture(name="in_repo")
def fixture_in_repo(monkeypatch):
  monkeypatch.chdir(REPO)


@pytest.mark.parametrize("override, expected", [
    ("--config.optim.lr_gg=1", "Unknown config key in --config.optim.lr_gg=1"),
    ("--config.optim.lr_g=fast", "lr_g"),
    ("--config.train.num_epochs=2.5", "num_epochs"),
    ("--config.data.random_flip=maybe", "random_flip"),
])
def test_main_flag_error_one_line(in_repo, capsys, override, expected):
  del in_repo
  with pytest.raises(SystemExit) as exit_info:
    _parse_and_validate(override)

  assert exit_info.value.code == 2
  error_lines = capsys.readouterr().err.strip().splitlines()
  assert len(error_lines) == 1
  assert error_lines[0].startswith("Error: ")
  assert expected in error_lines[0]
  assert "Traceback" not in error_lines[0]


def test_main_invalid_value_exits_2(in_repo, tmp_path, capsys):
  del in_repo
  argv = ["jaxgan", "--config", "configs/default.py:tiny", "--workdir", str(tmp_path / "run"),
          "--config.loss.g_threshold=2.0"]
  try:
    with mock.patch.object(sys, "argv", argv):
      main.parse_flags(argv)
      with pytest.raises(SystemExit) as exit_info:
        main.main(["jaxgan"])
  finally:
    flags.FLAGS.unparse_flags()

  assert exit_info.value.code == 2
  error_lines = capsys.readouterr().err.strip().splitlines()
  assert len(error_lines) == 1
  assert error_lines[0].startswith("Error: Invalid config value loss.g_threshold=2.0")
  assert not (tmp_path / "run").exists()


# Property-based tests

_VALUE_TEXTS = st.one_of(
    st.sampled_from(["0", "-1", "1e999", "nan", "inf", "-inf", "True", "False", "None", "''",
                     "[]", "{}", "1.5", "2", "65536", "w7", "folder", "rollback", "'x'", "1,2"]),
    st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=12),
)


def _flat_keys() -> list[str]:
  flat = []

  def visit(prefix, node):
    for key, value in node.items():
      if hasattr(value, "items"):
        visit(f"{prefix}{key}.", value)
      else:
        flat.append(f"{prefix}{key}")

  visit("", _tiny_config())
  return flat


_KEYS = st.one_of(st.sampled_from(_flat_keys()),
                  st.from_regex(r"[a-z_]{1,8}(\.[a-z_]{1,8}){0,2}", fullmatch=True))


@hypothesis.settings(max_examples=60, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(overrides=st.lists(st.tuples(_KEYS, _VALUE_TEXTS), min_size=1, max_size=3))
def test_fuzz_config_overrides(in_repo, overrides):
  del in_repo
  arguments = [f"--config.{key}={value}" for key, value in overrides]
  try:
    _parse_and_validate(*arguments)
  except SystemExit as exit_info:
    assert exit_info.code == 2
  except JaxganError:
    pass


@hypothesis.settings(max_examples=80, deadline=None,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(
    base=st.sampled_from(["empty", "png", "jpeg"]),
    data=st.binary(max_size=256),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(min_value=0)))
def test_fuzz_image_bytes(tmp_path, base, data, flips, cut):
  content = bytearray({"empty": b"", "png": _png_bytes(), "jpeg": _jpeg_bytes((24, 24))}[base])
  content += data
  for position, value in flips:
    if content:
      content[position % len(content)] = value
  if cut is not None and content:
    content = content[:cut % len(content)]
  path = tmp_path / "fuzz.png"
  path.write_bytes(bytes(content))

  for check in (lambda: images.read_image(path, 16), lambda: images.verify_image(path)):
    try:
      result = check()
    except images.UnreadableImageError as error:
      assert error.reason
      continue
    if result is not None:
      assert result.shape == (16, 16, 3)
      assert result.dtype == np.uint8
