"""Tests of jaxgan.report on tiny real runs: tables, images, missing pieces, browser rendering."""

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxgan import plots
from jaxgan import report
from jaxgan.report import figures
from jaxgan.report.runs import Run
from tests import browser
from tests import tiny_runs

REPO = pathlib.Path(__file__).resolve().parents[1]

SPIKE = {"kind": "spike", "epoch": 2, "step": 3, "curve": "d_loss", "scale": "epoch",
         "value": 2.5, "median": 1.2, "mad": 0.1, "magnitude": 13.0, "pinned_steps": [3]}
COLLAPSE = {"kind": "collapse", "epoch": 1, "step": 2, "curve": "d_fake", "scale": "steps",
            "value": 0.01, "median": 0.4, "mad": 0.05, "magnitude": 7.8, "pinned_steps": []}


def _add_detection_outputs(workdir: pathlib.Path) -> None:
  """Writes events.jsonl (with one garbled line) and analysis/ images, as spike detection does."""
  lines = [json.dumps(SPIKE), "{not json", json.dumps(COLLAPSE)]
  (workdir / "events.jsonl").write_text("\n".join(lines) + "\n")
  strip = np.zeros((20, 60, 3), np.uint8)
  strip[:, 20:40] = 200
  plots.save_png(strip, workdir / "analysis" / "spike_epoch_0002" / "strip.png")
  plots.save_gif([strip, 255 - strip], workdir / "analysis" / "spike_epoch_0002" / "steps.gif")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, pathlib.Path]:
  """The two tiny runs (one with detection outputs), an old-style unfinished run, a bare one."""
  folder = tmp_path_factory.mktemp("runs")
  finished = tiny_runs.copy_run(tiny_runs.FINISHED, folder / "finished")
  _add_detection_outputs(finished)
  one_epoch = tiny_runs.copy_run(tiny_runs.ONE_EPOCH, folder / "one_epoch")

  # A run written before summary.json had a history and still training: no history, no samples.
  old = tiny_runs.copy_run(tiny_runs.ONE_EPOCH, folder / "old_unfinished")
  summary = json.loads((old / "summary.json").read_text())
  del summary["history"]
  summary["num_epochs"] = 3
  (old / "summary.json").write_text(json.dumps(summary))
  for png in (old / "samples").iterdir():
    png.unlink()

  # A run that has started but not finished an epoch: config.json only.
  bare = folder / "bare"
  bare.mkdir()
  (bare / "config.json").write_text((finished / "config.json").read_text())
  return {"finished": finished, "one_epoch": one_epoch, "old": old, "bare": bare}


def _table_rows(markdown: str, first_cell: str) -> list[list[str]]:
  rows = []
  for line in markdown.splitlines():
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    if line.startswith("|") and cells[0] == first_cell:
      rows.append(cells)
  return rows


def test_summary_stores_history(runs):
  summary = json.loads((runs["finished"] / "summary.json").read_text())
  assert summary["history"]["epoch"] == [1, 2]
  assert len(summary["history"]["d_loss"]) == 2
  assert summary["history"]["d_loss"][-1] == summary["last_epoch_means"]["d_loss"]


@pytest.mark.slow
def test_report_of_two_runs(runs, tmp_path):
  html_path = report.build_report([runs["finished"], runs["one_epoch"]], tmp_path)
  markdown = (tmp_path / report.MARKDOWN_FILE).read_text()
  page = html_path.read_text()

  assert _table_rows(markdown, "optim.lr_d") == [["optim.lr_d", "0.0001", "0.0002"]]
  assert _table_rows(markdown, "train.num_epochs") == [["train.num_epochs", "2", "1"]]
  assert _table_rows(markdown, "model.width") == [["model.width", "8"]]  # in the shared table
  overview = _table_rows(markdown, "finished")[0]
  assert overview[2:5] == ["finished", "2 / 2", "4"]

  spike_row = _table_rows(markdown, "finished")[1]
  assert spike_row[1:4] == ["2", "3", "d_loss"]
  assert "Skipped 1 unreadable line(s) of events.jsonl." in markdown
  assert "Triangles mark spikes" in markdown

  for image in ("losses.png", "scores.png", "finished/epoch_0002.png",
                "one_epoch/epoch_0001.png", "one_epoch/samples.gif",
                "finished/analysis/spike_epoch_0002/steps.gif",
                "finished/analysis/spike_epoch_0002/strip.png"):
    assert (tmp_path / "images" / image).is_file(), image
    assert f"](images/{image})" in markdown, image
  # The analysis GIF replaces the sample-grid GIF of the run that has one.
  assert not (tmp_path / "images" / "finished" / "samples.gif").exists()
  with Image.open(tmp_path / "images" / "losses.png") as losses:
    assert losses.size == (1200, 450)

  assert page.count("<img ") == markdown.count("![")
  assert page.count('src="data:image/') == page.count("<img ")
  assert not re.search(r'(src|href)="(https?:)?//', page)


def test_report_states_missing_pieces(runs, tmp_path):
  report.build_report([runs["old"], runs["bare"]], tmp_path, epochs=[1, 2])
  markdown = (tmp_path / report.MARKDOWN_FILE).read_text()

  assert "old_unfinished: Unfinished: 1 of 3 epochs done." in markdown
  assert "old_unfinished: No sample grids yet" in markdown
  assert "bare: No summary.json yet" in markdown
  assert "bare: No events.jsonl" in markdown
  # The old run's curves come from its checkpoint (2 steps per epoch, 1 epoch).
  assert "old_unfinished: checkpoint 2" in markdown
  assert _table_rows(markdown, "epoch 2") == [
      ["epoch 2", "not reached (epochs done: 1)", "not reached (epochs done: 0)"]]
  assert "No GIF: no analysis/ GIFs and no sample grids yet." in markdown
  assert _table_rows(markdown, "bare")[0][2:4] == ["no epoch finished", "0 / 2"]


def test_earlier_report_images_replaced(runs, tmp_path):
  foreign = tmp_path / "images" / "mine.png"
  foreign.parent.mkdir()
  foreign.write_bytes(b"not from a report")
  report.build_report([runs["bare"]], tmp_path)
  assert foreign.is_file()  # no report was there, so images/ belongs to someone else

  report.build_report([runs["bare"]], tmp_path)
  assert not foreign.exists()
  assert (tmp_path / report.HTML_FILE).is_file()


def _run(**overrides) -> Run:
  config = {"optim": {"lr_d": 1e-4, "lr_g": 2e-4}, "data": {"random_flip": False}}
  for key, value in overrides.items():
    section, name = key.split("__")
    if value is None:
      del config[section][name]
    else:
      config[section][name] = value
  return Run(path=pathlib.Path("/x"), label="x", config=config, summary=None, history={},
             history_source="", samples={}, events=None, analysis_files=[], gaps=[])


def test_differing_config_keys():
  differing, shared = report.differing_config([
      _run(), _run(optim__lr_d=4e-5), _run(data__random_flip=None)])
  assert differing == ["data.random_flip", "optim.lr_d"]
  assert shared == ["optim.lr_g"]
  # True == 1 in Python, but the table would show them differently.
  differing, _ = report.differing_config([_run(), _run(data__random_flip=0)])
  assert differing == ["data.random_flip"]


def test_choose_sample_epochs():
  first = _run()
  first.samples = {epoch: pathlib.Path(f"{epoch}.png") for epoch in range(1, 101)}
  second = _run()
  second.samples = {epoch: pathlib.Path(f"{epoch}.png") for epoch in range(1, 38)}
  assert report.choose_sample_epochs([first, second], None) == [33, 37, 67, 100]
  assert report.choose_sample_epochs([first, second], [50, 10, 50]) == [10, 50]
  assert report.choose_sample_epochs([_run()], None) == []


def test_gif_frame_epochs_bounded():
  epochs = figures.gif_frame_epochs(list(range(1, 1001)))
  assert len(epochs) == figures.MAX_GIF_FRAMES
  assert epochs[0] == 1
  assert epochs[-1] == 1000
  assert figures.gif_frame_epochs([3, 1, 2]) == [1, 2, 3]


def test_cli_rejects_non_workdir(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "jaxgan.report", str(tmp_path), "--out", str(tmp_path / "out")],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f"Error: Not a jaxgan workdir: {tmp_path} has no readable config.json. Pass the folder "
      "given to python -m jaxgan.main --workdir, which writes config.json when training starts."]
  assert not (tmp_path / "out").exists()


def test_cli_rejects_bad_epochs(runs, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "jaxgan.report", str(runs["bare"]), "--out", str(tmp_path),
       "--epochs", "0,5"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2
  assert len(result.stderr.strip().splitlines()) == 1
  assert "invalid --epochs '0,5'" in result.stderr


@pytest.mark.skipif(browser.unavailable() is not None,
                    reason=f"headless Chromium unavailable: {browser.unavailable()}")
def test_browser_catches_broken_page(tmp_path):
  page = tmp_path / "broken.html"
  page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                  '<img alt="broken" src="data:image/png;base64,AAAA">'
                  '<script>console.error("deliberate error")</script></body></html>')
  rendered = browser.render(page, tmp_path / "broken.png")
  assert rendered.images == [("broken", True, 0)]
  assert any("deliberate error" in message for message in rendered.console_errors)


@pytest.mark.slow
@pytest.mark.skipif(browser.unavailable() is not None,
                    reason=f"headless Chromium unavailable: {browser.unavailable()}")
def test_report_renders_in_chromium(runs, tmp_path):
  html_path = report.build_report(list(runs.values()), tmp_path / "report")
  screenshot = tmp_path / "report_screenshot.png"
  rendered = browser.render(html_path, screenshot)
  print(f"Screenshot of the rendered report: {screenshot}")

  assert len(rendered.images) == html_path.read_text().count("<img ")
  assert len(rendered.images) >= 8
  not_loaded = [alt for alt, complete, width in rendered.images if not complete or width <= 0]
  assert not_loaded == []
  assert rendered.console_errors == []
  with Image.open(screenshot) as image:
    assert image.width >= 1000
    assert image.height > 2000
