"""Tests of `python -m jaxgan.analyze` on a tiny finished run and on bad input."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxgan import analyze
from jaxgan import monitors
from jaxgan.base_configs import dcgan

from tests.conftest import REPO


# A UserWarning here is matplotlib giving up on the layout of the curve plots.
@pytest.mark.filterwarnings("error::UserWarning")
def test_analyze_writes_strips_gifs_curves(spiky_run, tmp_path, capsys):
  out = tmp_path / "analysis"
  before = sorted(os.listdir(spiky_run))

  status = analyze.main(["--workdir", str(spiky_run), "--out", str(out), "--window", "1",
                         "--gif", "1:4"])

  assert status == 0
  report = capsys.readouterr().out
  assert "Events: 9, events.jsonl" in report
  assert "collapse" in report
  for curve in monitors.SPIKE_CURVES:
    for scale in ("epoch", "steps"):
      assert (out / f"spike_e0003_{curve}_{scale}.png").is_file()
      assert (out / f"spike_e0003_{curve}_{scale}.gif").is_file()
  assert (out / "curves_losses.png").is_file()
  assert (out / "curves_scores.png").is_file()
  with Image.open(out / "epochs_1-4.gif") as gif:
    assert gif.n_frames == 4
  with Image.open(out / "spike_e0003_d_loss_epoch.gif") as gif:
    assert gif.n_frames == 3  # epochs 2 to 4
  grid_width = Image.open(spiky_run / "samples" / "epoch_0001.png").width
  assert Image.open(out / "spike_e0003_d_loss_epoch.png").width == 4 * grid_width + 3 * analyze._GAP
  assert sorted(os.listdir(spiky_run)) == before


def test_analyze_recomputes_without_events_file(spiky_run, tmp_path, capsys):
  workdir = tmp_path / "old_run"
  shutil.copytree(spiky_run, workdir)
  (workdir / "events.jsonl").unlink()

  assert analyze.main(["--workdir", str(workdir)]) == 0
  assert "recomputed from the per-epoch history in checkpoint 16" in capsys.readouterr().out
  assert (workdir / "analysis" / "curves_losses.png").is_file()

  # The run's saved threshold (1e6) flags nothing; a tiny one flags every curve at epochs 3, 4.
  assert analyze.main(["--workdir", str(workdir), "--threshold", "1e-9"]) == 0
  assert "Events: 8, recomputed" in capsys.readouterr().out
  assert (workdir / "analysis" / "spike_e0004_g_loss_epoch.png").is_file()


def test_recompute_events_finds_planted_spike():
  rng = np.random.default_rng(0)
  values = list(1.0 + 0.02 * rng.standard_normal(40))
  values[25] = 3.0
  history = {"epoch": list(range(1, 41)), "g_loss": values}

  events = analyze.recompute_events(history, dcgan.get_config(), steps_per_epoch=31)
  assert [(e.epoch, e.step, e.curve) for e in events] == [(26, 26 * 31, "g_loss")]


def test_recovered_epoch_first_back_within_threshold():
  history = {"epoch": [1, 2, 3, 4, 5], "d_loss": [1.0, 5.0, 3.0, 1.2, 1.0]}
  event = monitors.Event("spike", 2, 20, "d_loss", "epoch", 5.0, 1.0, 0.1, 40.0)
  assert analyze.recovered_epoch(history, event, threshold=6.0) == 4
  assert analyze.recovered_epoch(history, event, threshold=1.0) == 5
  assert analyze.recovered_epoch(history, event, threshold=0.5) == 5
  history["d_loss"][4] = 2.0
  assert analyze.recovered_epoch(history, event, threshold=1.0) is None


def test_analyze_rejects_bad_gif_range(spiky_run, tmp_path, capsys):
  for gif, message in (("5:2", "Invalid --gif '5:2'"), ("50:60", "No sample grids between")):
    assert analyze.main(["--workdir", str(spiky_run), "--out", str(tmp_path), "--gif", gif]) == 2
    assert capsys.readouterr().err.startswith(f"Error: {message}")


def test_analyze_rejects_workdir_without_samples(tmp_path, capsys):
  assert analyze.main(["--workdir", str(tmp_path)]) == 2
  assert capsys.readouterr().err.startswith("Error: No sample grids in")


def test_analyze_cli_missing_workdir_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "jaxgan.analyze", "--workdir", str(tmp_path / "missing")],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2
  assert result.stderr.splitlines() == [
      f"Error: Workdir not found: {tmp_path / 'missing'}. Pass the --workdir of a training run."]
