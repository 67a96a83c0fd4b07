"""Tests of `python -m jaxgan.translate` on a workdir with an untrained CycleGAN checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxgan import checkpoint
from jaxgan import families
from jaxgan import translate
from jaxgan.data import images
from jaxgan.errors import ConfigError
from jaxgan.errors import DataError
from jaxgan.families import cyclegan as cyclegan_family

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from configs import cyclegan_face2simpsons  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A workdir with config.json and one checkpoint of freshly initialized networks."""
  path = tmp_path_factory.mktemp("run")
  config = cyclegan_face2simpsons.get_config("tiny")
  state = families.get("cyclegan").init_state(config, steps_per_epoch=1)
  (path / "config.json").write_text(json.dumps(config.to_dict()))
  meta = checkpoint.Meta(epoch=1, batch_in_epoch=0, train_key=[0, 0], config=config.to_dict(),
                         history={}, wall_times=[])
  checkpointer = checkpoint.Checkpointer(path, keep=1)
  checkpointer.save(4, state, meta)
  checkpointer.close()
  return path, state


def write_photo(path: Path, width: int, height: int, seed: int = 0) -> None:
  pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path)


def expected_output(state, params, path: Path) -> np.ndarray:
  pixels = images.read_image(path, 32).astype(np.float32) / 127.5 - 1.0
  output = np.asarray(cyclegan_family.translate(state.generator_graphdef, params, pixels[None]))
  return np.clip(np.round((output[0] + 1.0) * 127.5), 0, 255).astype(np.uint8)


def test_translate_file_crops_and_resizes(workdir, tmp_path):
  path, state = workdir
  photo = tmp_path / "photo.jpg"
  write_photo(photo, 80, 50)
  out = tmp_path / "out.png"
  assert translate.translate_files(str(path), str(photo), str(out), "a2b") == [out]
  result = np.asarray(Image.open(out))
  assert result.shape == (32, 32, 3)
  np.testing.assert_array_equal(result, expected_output(state, state.g_params, photo))


def test_translate_direction_b2a_uses_f(workdir, tmp_path):
  path, state = workdir
  photo = tmp_path / "photo.png"
  write_photo(photo, 32, 32)
  out = tmp_path / "out.png"
  translate.translate_files(str(path), str(photo), str(out), "b2a")
  np.testing.assert_array_equal(np.asarray(Image.open(out)),
                                expected_output(state, state.f_params, photo))


def test_translate_folder(workdir, tmp_path):
  path, _ = workdir
  folder = tmp_path / "in"
  folder.mkdir()
  write_photo(folder / "a.jpg", 64, 64, seed=1)
  write_photo(folder / "b.png", 40, 60, seed=2)
  (folder / "notes.txt").write_text("not an image")
  written = translate.translate_files(str(path), str(folder), str(tmp_path / "out"), "a2b")
  assert sorted(p.name for p in written) == ["a.png", "b.png"]
  for output in written:
    assert np.asarray(Image.open(output)).shape == (32, 32, 3)


def test_translate_rejects_non_image(workdir, tmp_path):
  path, _ = workdir
  fake = tmp_path / "fake.jpg"
  fake.write_text("this is text")
  with pytest.raises(DataError, match="Cannot read image .*fake.jpg"):
    translate.translate_files(str(path), str(fake), str(tmp_path / "out.png"), "a2b")


def test_translate_missing_workdir_and_checkpoint(workdir, tmp_path):
  path, _ = workdir
  photo = tmp_path / "photo.png"
  write_photo(photo, 32, 32)
  with pytest.raises(ConfigError, match="does not exist"):
    translate.translate_files(str(tmp_path / "nowhere"), str(photo), str(tmp_path / "o.png"),
                              "a2b")
  empty = tmp_path / "empty_run"
  empty.mkdir()
  (empty / "config.json").write_text((path / "config.json").read_text())
  with pytest.raises(ConfigError, match="no checkpoints"):
    translate.translate_files(str(empty), str(photo), str(tmp_path / "o.png"), "a2b")


@pytest.mark.slow
def test_translate_cli_exit_codes(workdir, tmp_path):
  path, _ = workdir
  fake = tmp_path / "fake.png"
  fake.write_bytes(b"\x89PNG broken")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  command = [sys.executable, "-m", "jaxgan.translate", "--workdir", str(path), "--input",
             str(fake), "--out", str(tmp_path / "out.png")]
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
  assert len(errors) == 1
  assert errors[0].startswith("Error: Cannot read image")
  assert "Traceback" not in result.stderr

  photo = tmp_path / "photo.png"
  write_photo(photo, 32, 32)
  command[command.index("--input") + 1] = str(photo)
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert (tmp_path / "out.png").is_file()
