"""Tests that jaxgan.main rejects a bad config or data folder before it imports JAX.

Each case runs `python -m jaxgan.main` in a subprocess, once plainly to check the one-line error
and once with `-X importtime`, whose module list on stderr shows whether JAX or TensorFlow was
imported.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

# Generous for a loaded 2-core machine: the checks take under 2 s there, while importing JAX
# and TensorFlow and starting the backend takes 15 s or more.
_MAX_SECONDS = 15


def _run_main(workdir: Path, overrides: list[str], *python_options: str):
  command = [sys.executable, *python_options, "-m", "jaxgan.main",
             "--config=configs/default.py:tiny", f"--workdir={workdir}", *overrides]
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  start = time.monotonic()
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
  return result, time.monotonic() - start


def _imported_modules(importtime_stderr: str) -> set[str]:
  """Returns the top-level packages listed by `python -X importtime` ("... | name")."""
  names = set()
  for line in importtime_stderr.splitlines():
    if line.startswith("import time:") and "|" in line:
      names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
  return names


def _empty_folder(tmp_path: Path) -> str:
  folder = tmp_path / "empty"
  folder.mkdir()
  (folder / "notes.txt").write_text("not an image")
  return str(folder)


@pytest.mark.parametrize("make_overrides, expected", [
    (lambda tmp_path: ["--config.data.source=folder", "--config.data.dir=/nonexistent/faces"],
     "Image folder /nonexistent/faces does not exist"),
    (lambda tmp_path: ["--config.data.source=folder",
                       f"--config.data.dir={_empty_folder(tmp_path)}"],
     "No image files (.png, .jpg, .jpeg) found in"),
    (lambda tmp_path: ["--config.optim.lr_g=-1"],
     "Invalid config value optim.lr_g=-1.0: must be a number in (0, 10]"),
    (lambda tmp_path: ["--config.model.arch=w9"],
     "Invalid config value model.arch='w9'"),
    (lambda tmp_path: [f"--config.data.dir={tmp_path}"],
     "is set but data.source is 'generated', which ignores it"),
], ids=["missing_folder", "folder_without_images", "negative_lr", "unknown_arch",
        "dir_with_generated_source"])
def test_bad_input_fails_before_jax(tmp_path, make_overrides, expected):
  workdir = tmp_path / "run"
  overrides = make_overrides(tmp_path)

  result, seconds = _run_main(workdir, overrides)

  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith("Error: ")
  assert expected in lines[0]
  assert seconds < _MAX_SECONDS
  assert not workdir.exists()

  traced, _ = _run_main(workdir, overrides, "-X", "importtime")
  modules = _imported_modules(traced.stderr)
  # jaxgan itself must be listed, which shows that the import trace was parsed.
  assert "jaxgan" in modules
  assert "jax" not in modules
  assert "tensorflow" not in modules


def test_unreadable_folder_fails_before_jax(tmp_path):
  if os.geteuid() == 0:
    pytest.skip("root reads folders without read permission")
  folder = tmp_path / "locked"
  folder.mkdir()
  Image.new("RGB", (16, 16)).save(folder / "face.png")
  folder.chmod(0)
  try:
    result, _ = _run_main(tmp_path / "run", ["--config.data.source=folder",
                                             f"--config.data.dir={folder}"])
  finally:
    folder.chmod(0o755)

  assert result.returncode == 2
  assert result.stderr.startswith(f"Error: Image folder {folder} is not readable")


def test_class_subfolders_pass_folder_check(tmp_path):
  from jaxgan.data import folder  # pylint: disable=g-import-not-at-top

  (tmp_path / "cats").mkdir()
  Image.new("RGB", (16, 16)).save(tmp_path / "cats" / "0.png")

  folder.check_folder(tmp_path)


def test_architecture_names_match_models():
  from jaxgan.config_checks import dcgan as dcgan_checks  # pylint: disable=g-import-not-at-top
  from jaxgan.models import dcgan as dcgan_models  # pylint: disable=g-import-not-at-top

  assert dcgan_checks.CONV_ARCHITECTURES == tuple(sorted(dcgan_models.ARCHITECTURES))
