"""Tests of jaxgan.sweep: point names, grids, value parsing and rejection, skip and resume."""

import json
import pathlib
import subprocess
import sys

import pytest

from jaxgan import sweep
from jaxgan.errors import ConfigError
from tests import tiny_runs

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = "configs/default.py:tiny"


def _base():
  return sweep.load_base_config(str(REPO / "configs" / "default.py") + ":tiny")


def test_point_names_readable_and_stable():
  points = sweep.grid([("optim.lr_d", [4e-5, 1e-4]), ("loss.g_threshold", [0.25, 0.5])], False)
  names = sweep.point_names(points)
  assert names == ["lr_d-4e-05__g_threshold-0.25", "lr_d-4e-05__g_threshold-0.5",
                   "lr_d-0.0001__g_threshold-0.25", "lr_d-0.0001__g_threshold-0.5"]
  assert sweep.point_names(points) == names


def test_point_names_shared_leaf_uses_full_key():
  names = sweep.point_names([{"optim.schedule": "cosine", "model.schedule": "x"}])
  assert names == ["optim.schedule-cosine__model.schedule-x"]


def test_point_names_safe_characters_and_collisions():
  names = sweep.point_names([{"data.dir": "/a b"}, {"data.dir": "/a_b"}, {"data.dir": "ok"}])
  assert names[2] == "dir-ok"
  assert names[0] != names[1]
  for name in names:
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
  long_name = sweep.point_names([{"data.dir": "x" * 500}])[0]
  assert len(long_name) == sweep.MAX_NAME_LENGTH
  assert sweep.point_names([{"optim.lr_d": 1e6, "data.random_flip": True}]) == [
      "lr_d-1e06__random_flip-true"]


def test_grid_product_and_zip():
  sets = [("optim.lr_d", [1, 2]), ("loss.g_threshold", [0.25, 0.5])]
  assert sweep.grid(sets, zip_values=False) == [
      {"optim.lr_d": 1, "loss.g_threshold": 0.25}, {"optim.lr_d": 1, "loss.g_threshold": 0.5},
      {"optim.lr_d": 2, "loss.g_threshold": 0.25}, {"optim.lr_d": 2, "loss.g_threshold": 0.5}]
  assert sweep.grid(sets, zip_values=True) == [
      {"optim.lr_d": 1, "loss.g_threshold": 0.25}, {"optim.lr_d": 2, "loss.g_threshold": 0.5}]
  with pytest.raises(ConfigError, match="same number of values"):
    sweep.grid([("optim.lr_d", [1, 2]), ("loss.g_threshold", [0.25])], zip_values=True)


def test_values_parsed_with_config_types():
  points = sweep.make_points(
      _base(), ["train.num_epochs=3", "data.random_flip=true,false", "optim.lr_d=4e-5"],
      ["--config.loss.d_reduction=mean"], zip_values=False)
  assert [p.values for p in points] == [
      {"train.num_epochs": 3, "data.random_flip": True, "optim.lr_d": 4e-5},
      {"train.num_epochs": 3, "data.random_flip": False, "optim.lr_d": 4e-5}]
  assert type(points[0].config.train.num_epochs) is int
  assert points[1].config.data.random_flip is False
  assert points[0].config.loss.d_reduction == "mean"


@pytest.mark.parametrize("sets, overrides, message", [
    (["optim.lr_dd=1e-4"], [], "Unknown config key 'optim.lr_dd'"),
    (["optim.lr_d=fast"], [], "Invalid value 'fast' for config key optim.lr_d: expected a number"),
    (["train.num_epochs=2.5"], [], "expected an integer"),
    (["data.random_flip=maybe"], [], "expected true or false"),
    (["optim.lr_d=1e-4,-1"], [], r"Sweep point lr_d--1 is invalid: .*optim\.lr_d=-1\.0"),
    (["optim=1"], [], "is a section, not a value"),
    (["optim.lr_d=1e-4,1e-4"], [], "Repeated value"),
    (["optim.lr_d"], [], "expected KEY=VALUE"),
    (["optim.lr_d=1e-4", "optim.lr_d=2e-4"], [], "more than once"),
    (["optim.lr_d=1e-4"], ["--config.optim.lr_d=2e-4"], "given both to --set and"),
    (["optim.lr_d=1e-4"], ["--config.optim.nope=1"], "Unknown config key 'optim.nope'"),
    (["optim.lr_d=1e-4"], ["stray"], "Unexpected argument 'stray'"),
    ([], [], "Nothing to sweep"),
])
def test_bad_keys_and_values_rejected(sets, overrides, message):
  with pytest.raises(ConfigError, match=message):
    sweep.make_points(_base(), sets, overrides, zip_values=False)


def test_device_slots():
  assert sweep.device_slots(2, []) == [{}, {}]
  assert sweep.device_slots(2, ["0", "1", "2", "3"]) == [
      {"CUDA_VISIBLE_DEVICES": "0,2"}, {"CUDA_VISIBLE_DEVICES": "1,3"}]
  shared = sweep.device_slots(3, ["0", "1"])
  assert [slot["CUDA_VISIBLE_DEVICES"] for slot in shared] == ["0", "1", "0"]
  assert all(slot["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for slot in shared)


def _run_sweep(*arguments: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "jaxgan.sweep", *arguments], cwd=REPO,
                        capture_output=True, text=True, timeout=900, check=False)


def test_cli_rejects_bad_value_before_running(tmp_path):
  root = tmp_path / "sweep"
  result = _run_sweep("--config", TINY, "--root", str(root), "--set", "optim.lr_d=1e-4,abc")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "Error: Invalid value 'abc' for config key optim.lr_d: expected a number, because the "
      "config sets optim.lr_d=0.0002.")
  assert [line for line in result.stderr.splitlines() if line.startswith("Error")] == [
      result.stderr.strip().splitlines()[-1]]
  assert not root.exists()


@pytest.mark.slow
def test_sweep_skips_finished_and_resumes_unfinished(tmp_path):
  root = tmp_path / "sweep"
  # Points of --set optim.lr_d=1e-4,2e-4 over 2 epochs: the first has finished both, the second
  # only one (it was started with train.num_epochs=1).
  finished = tiny_runs.copy_run(tiny_runs.FINISHED, root / "lr_d-0.0001")
  unfinished = tiny_runs.copy_run(tiny_runs.ONE_EPOCH, root / "lr_d-0.0002")
  finished_summary = (finished / "summary.json").read_bytes()
  first_grid = (unfinished / "samples" / "epoch_0001.png").read_bytes()

  result = _run_sweep("--config", TINY, "--root", str(root), "--set", "optim.lr_d=1e-4,2e-4",
                      "--config.data.num_generated=32")
  assert result.returncode == 0, result.stderr[-3000:]

  assert "[1/2] lr_d-0.0001: skipped, all 2 epochs done" in result.stderr
  assert "[2/2] lr_d-0.0002: resuming after epoch 1 of 2" in result.stderr
  assert "[2/2] lr_d-0.0002: finished 2 epochs" in result.stderr
  assert (finished / "summary.json").read_bytes() == finished_summary
  assert json.loads((unfinished / "summary.json").read_text())["epochs_done"] == 2
  # Resumed, not restarted: epoch 1's grid is the one written before the sweep.
  assert (unfinished / "samples" / "epoch_0001.png").read_bytes() == first_grid
  assert (unfinished / "samples" / "epoch_0002.png").is_file()
  assert "Resuming from checkpoint" in (root / "logs" / "lr_d-0.0002.log").read_text()
  assert not (root / "logs" / "lr_d-0.0001.log").exists()
  markdown = (root / "report" / "report.md").read_text()
  assert "| optim.lr_d | 0.0001 | 0.0002 |" in markdown
  assert result.stdout.split() == ["skipped", str(finished), "finished", str(unfinished)]
