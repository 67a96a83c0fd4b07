"""Comparison report of training runs: one self-contained HTML page and its Markdown twin.

    python -m jaxgan.report runs/a runs/b --out report/ [--epochs 10,50,100] [--title T]

writes report/report.html (every image embedded as a data URI, so the page opens anywhere and
makes no request), report/report.md and the image files that the Markdown links, under
report/images/. The page shows the config keys that differ between runs, epochs and wall time,
the loss and discriminator-score curves overlaid, spike and collapse tables from each run's
events.jsonl, sample grids at chosen epochs, and GIFs. A run that lacks a piece (no epoch
finished, no events.jsonl, no samples) still appears, and the page states what is missing.
"""

import pathlib
import shutil
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxgan.report import document as doc
from jaxgan.report import figures
from jaxgan.report.runs import Run
from jaxgan.report.runs import WorkdirError
from jaxgan.report.runs import assign_labels
from jaxgan.report.runs import load_run

__all__ = ["build_report", "choose_sample_epochs", "differing_config", "load_run", "Run",
           "WorkdirError"]

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
IMAGES_DIR = "images"
# Analysis images listed per run at most; the page states how many more the run has.
MAX_ANALYSIS_IMAGES = 24
_NUM_SPACED_EPOCHS = 3
_LAST_MEANS = (("d_loss", "d_loss"), ("g_loss", "g_loss"), ("d_real", "D(x)"),
               ("d_fake", "D(G(z))"))
_EVENT_COLUMNS = ("epoch", "step", "curve", "scale", "value", "median", "mad", "magnitude",
                  "pinned_steps")


def build_report(
    run_paths: Sequence[str | pathlib.Path],
    out_dir: str | pathlib.Path,
    epochs: Sequence[int] | None = None,
    title: str | None = None,
) -> pathlib.Path:
  """Writes the report of the workdirs `run_paths` into `out_dir`; returns the HTML file.

  Args:
    run_paths: workdirs of jaxgan.main, at least one.
    out_dir: output folder, created if missing. An earlier report there, with its images/, is
      replaced.
    epochs: epochs whose sample grids are shown; None picks a few evenly spaced epochs and each
      run's last grid.
    title: page title; None names the runs.

  Raises:
    WorkdirError: if a path is not a workdir.
  """
  if not run_paths:
    raise WorkdirError("No runs given. Pass one or more workdirs of python -m jaxgan.main.")
  runs = [load_run(path) for path in run_paths]
  assign_labels(runs)
  out_dir = pathlib.Path(out_dir)
  images_dir = out_dir / IMAGES_DIR
  # Images of an earlier report in this folder would otherwise stay next to the new ones. An
  # images/ folder without a report beside it is someone else's and stays.
  earlier_report = (out_dir / HTML_FILE).is_file() or (out_dir / MARKDOWN_FILE).is_file()
  if images_dir.is_dir() and earlier_report:
    shutil.rmtree(images_dir)
  images_dir.mkdir(parents=True, exist_ok=True)
  if title is None:
    title = "Comparison of " + ", ".join(run.label for run in runs)

  blocks: list[doc.Block] = []
  blocks += _overview_section(runs)
  blocks += _config_section(runs)
  blocks += _gaps_section(runs)
  blocks += _curves_section(runs, out_dir)
  blocks += _events_section(runs)
  blocks += _samples_section(runs, out_dir, epochs)
  blocks += _gifs_section(runs, out_dir)
  blocks += _analysis_section(runs, out_dir)

  html_path = out_dir / HTML_FILE
  html_path.write_text(doc.to_html(title, blocks, out_dir), encoding="utf-8")
  (out_dir / MARKDOWN_FILE).write_text(doc.to_markdown(title, blocks), encoding="utf-8")
  return html_path


def format_value(value: Any) -> str:
  """Formats a config value or metric for a table cell."""
  if isinstance(value, bool) or value is None:
    return str(value)
  if isinstance(value, float):
    return f"{value:.6g}"
  if isinstance(value, str):
    return value if value else '""'
  if isinstance(value, (list, tuple)):
    return "[" + ", ".join(format_value(v) for v in value) + "]"
  return str(value)


def format_duration(seconds: float) -> str:
  """Formats seconds as "42 s", "12 min 05 s" or "3 h 07 min"."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds} s"
  minutes, seconds = divmod(seconds, 60)
  if minutes < 60:
    return f"{minutes} min {seconds:02d} s"
  hours, minutes = divmod(minutes, 60)
  return f"{hours} h {minutes:02d} min"


_MISSING = object()


def differing_config(runs: Sequence[Run]) -> tuple[list[str], list[str]]:
  """Returns (keys whose values differ between runs, keys equal in all), flattened and sorted.

  A key that some runs lack (a config written by an older jaxgan) counts as differing.
  """
  flats = [run.flat_config for run in runs]
  keys = sorted(set().union(*flats))
  differing, shared = [], []
  for key in keys:
    values = [flat.get(key, _MISSING) for flat in flats]
    first = values[0]
    if all(_same(value, first) for value in values[1:]):
      shared.append(key)
    else:
      differing.append(key)
  return differing, shared


def _same(a: Any, b: Any) -> bool:
  if a is _MISSING or b is _MISSING:
    return a is b
  if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
    return list(a) == list(b)
  # The type check keeps True apart from 1, and 1 apart from 1.0 as the table would show them.
  return type(a) is type(b) and a == b


def _config_cell(flat: dict[str, Any], key: str) -> str:
  return format_value(flat[key]) if key in flat else "(not set)"


def _overview_section(runs: Sequence[Run]) -> list[doc.Block]:
  header = ["run", "workdir", "status", "epochs done / planned", "steps", "wall time",
            "median s per epoch"] + [f"last epoch {name}" for _, name in _LAST_MEANS]
  rows = []
  for run in runs:
    summary = run.summary or {}
    planned = str(run.num_epochs) if run.num_epochs is not None else "?"
    if run.summary is None:
      status = "no epoch finished"
    else:
      status = "finished" if run.finished else "unfinished"
    per_epoch = summary.get("wall_time_per_epoch_s") or []
    means = summary.get("last_epoch_means") or {}
    rows.append([
        run.label, str(run.path), status, f"{run.epochs_done} / {planned}",
        str(summary.get("steps", "-")),
        format_duration(summary["wall_time_s"]) if "wall_time_s" in summary else "-",
        f"{statistics.median(per_epoch):.1f}" if per_epoch else "-",
    ] + [format_value(means[key]) if key in means else "-" for key, _ in _LAST_MEANS])
  return [doc.Heading("Runs"), doc.Table(header, rows)]


def _config_section(runs: Sequence[Run]) -> list[doc.Block]:
  differing, shared = differing_config(runs)
  blocks: list[doc.Block] = [doc.Heading("Hyper-parameters that differ")]
  if len(runs) == 1:
    blocks.append(doc.Paragraph("Only one run: nothing to compare."))
  elif not differing:
    blocks.append(doc.Paragraph("All runs have the same config."))
  else:
    flats = [run.flat_config for run in runs]
    rows = [[key] + [_config_cell(flat, key) for flat in flats] for key in differing]
    blocks.append(doc.Table(["config key"] + [run.label for run in runs], rows))
  shared_rows = [[key, _config_cell(runs[0].flat_config, key)] for key in shared]
  blocks.append(doc.Details(f"Settings shared by all runs ({len(shared)} keys)",
                            [doc.Table(["config key", "value"], shared_rows)]))
  return blocks


def _gaps_section(runs: Sequence[Run]) -> list[doc.Block]:
  items = [f"{run.label}: {gap}" for run in runs for gap in run.gaps]
  blocks: list[doc.Block] = [doc.Heading("Missing pieces")]
  if items:
    blocks.append(doc.BulletList(items))
  else:
    blocks.append(doc.Paragraph(
        "None: every run has finished and has its history, sample grids and events.jsonl."))
  return blocks


def _curves_section(runs: Sequence[Run], out_dir: pathlib.Path) -> list[doc.Block]:
  blocks: list[doc.Block] = [doc.Heading("Curves")]
  if not any(run.history for run in runs):
    blocks.append(doc.Paragraph("No run has per-epoch means yet."))
    return blocks
  sources = [f"{run.label}: {run.history_source}" for run in runs
             if run.history and run.history_source != "summary.json"]
  if sources:
    blocks.append(doc.Paragraph(
        "Per-epoch means read from checkpoints, because summary.json has no history: "
        + "; ".join(sources) + "."))
  marked = any(run.events for run in runs)
  legend = (" Triangles mark spikes and crosses mark collapses (from events.jsonl), on every "
            "curve of the run at the event's epoch." if marked else "")
  losses = pathlib.Path(IMAGES_DIR, "losses.png")
  figures.plot_overlay(runs, (("d_loss", "D loss"), ("g_loss", "G loss")), out_dir / losses)
  blocks.append(doc.Image(losses, "Per-epoch mean D and G losses of every run",
                          "Per-epoch mean losses." + legend))
  scores = pathlib.Path(IMAGES_DIR, "scores.png")
  figures.plot_overlay(runs, (("d_real", "D(x), real images"), ("d_fake", "D(G(z)), fakes")),
                       out_dir / scores, y_limits=(0.0, 1.0))
  blocks.append(doc.Image(scores, "Per-epoch mean D(x) and D(G(z)) of every run",
                          "Per-epoch mean discriminator scores." + legend))
  return blocks


def _event_cell(event: dict[str, Any], column: str) -> str:
  if column not in event:
    return "-"
  value = event[column]
  if column == "pinned_steps" and isinstance(value, list):
    return ", ".join(str(v) for v in value) if value else "-"
  return format_value(value)


def _events_section(runs: Sequence[Run]) -> list[doc.Block]:
  blocks: list[doc.Block] = [doc.Heading("Spikes and collapses")]
  without_file = [run.label for run in runs if run.events is None]
  if len(without_file) == len(runs):
    blocks.append(doc.Paragraph(
        "No run has an events.jsonl, so there are no spike or collapse detection results."))
    return blocks
  if without_file:
    blocks.append(doc.Paragraph(
        "No events.jsonl (no spike or collapse detection results) for: "
        + ", ".join(without_file) + "."))
  with_file = [run for run in runs if run.events is not None]
  for kind, heading in (("spike", "Spikes"), ("collapse", "Collapses")):
    rows = [[run.label] + [_event_cell(event, column) for column in _EVENT_COLUMNS]
            for run in with_file for event in run.events if event["kind"] == kind]
    blocks.append(doc.Heading(heading, level=3))
    if rows:
      blocks.append(doc.Table(["run"] + list(_EVENT_COLUMNS), rows))
    else:
      blocks.append(doc.Paragraph(
          f"No {kind} in the events.jsonl of " + ", ".join(r.label for r in with_file) + "."))
  return blocks


def choose_sample_epochs(runs: Sequence[Run], requested: Sequence[int] | None) -> list[int]:
  """Returns the sorted epochs of the sample-grid table.

  With `requested`, those. Otherwise a few epochs evenly spaced up to the last grid of any run
  (rounded to an epoch that has a grid), plus each run's last grid.
  """
  if requested:
    return sorted(set(requested))
  available = sorted(set().union(*(run.samples for run in runs)))
  if not available:
    return []
  last = available[-1]
  chosen = {run_last for run in runs if run.samples for run_last in [max(run.samples)]}
  for fraction in np.linspace(0, 1, _NUM_SPACED_EPOCHS + 1)[1:-1]:
    target = fraction * last
    chosen.add(min(available, key=lambda epoch: (abs(epoch - target), epoch)))
  return sorted(chosen)


def _copy_image(source: pathlib.Path, out_dir: pathlib.Path, *parts: str) -> pathlib.Path:
  """Copies `source` to out_dir/images/<parts>; returns the path relative to out_dir."""
  relative = pathlib.Path(IMAGES_DIR, *parts)
  (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
  shutil.copyfile(source, out_dir / relative)
  return relative


def _sample_cell(run: Run, epoch: int, out_dir: pathlib.Path) -> doc.Cell:
  if epoch > run.epochs_done and epoch not in run.samples:
    return f"not reached (epochs done: {run.epochs_done})"
  earlier = [e for e in run.samples if e <= epoch]
  if not earlier:
    return f"no sample grid up to epoch {epoch}"
  shown = max(earlier)
  relative = _copy_image(run.samples[shown], out_dir, run.slug, f"epoch_{shown:04d}.png")
  caption = f"epoch {shown}" if shown == epoch else f"epoch {shown} (no grid for epoch {epoch})"
  return doc.Image(relative, f"{run.label} samples at epoch {shown}", caption, css_class="grid")


def _samples_section(runs: Sequence[Run], out_dir: pathlib.Path,
                     requested: Sequence[int] | None) -> list[doc.Block]:
  blocks: list[doc.Block] = [doc.Heading("Sample grids")]
  epochs = choose_sample_epochs(runs, requested)
  if not epochs:
    blocks.append(doc.Paragraph("No run has sample grids yet."))
    return blocks
  blocks.append(doc.Paragraph(
      "Samples from each run's fixed latents at the end of the epochs below. A run without a "
      "grid for an epoch shows its nearest earlier grid."))
  rows = [[f"epoch {epoch}"] + [_sample_cell(run, epoch, out_dir) for run in runs]
          for epoch in epochs]
  blocks.append(doc.Table(["epoch"] + [run.label for run in runs], rows))
  return blocks


def _gifs_section(runs: Sequence[Run], out_dir: pathlib.Path) -> list[doc.Block]:
  blocks: list[doc.Block] = [doc.Heading("GIFs")]
  for run in runs:
    blocks.append(doc.Heading(run.label, level=3))
    analysis_gifs = _analysis_images(run, out_dir, ".gif")
    if analysis_gifs:
      blocks += analysis_gifs
    elif run.samples:
      relative = pathlib.Path(IMAGES_DIR, run.slug, "samples.gif")
      frame_epochs = figures.write_samples_gif(run.samples, out_dir / relative)
      blocks.append(doc.Image(
          relative, f"{run.label} sample grids over the run",
          f"Sample grids of epochs {frame_epochs[0]} to {frame_epochs[-1]}: "
          f"{len(frame_epochs)} frame(s) of the {len(run.samples)} grid(s), "
          f"{figures.GIF_FRAME_MS} ms per frame.", css_class="grid"))
    else:
      blocks.append(doc.Paragraph("No GIF: no analysis/ GIFs and no sample grids yet."))
  return blocks


def _analysis_section(runs: Sequence[Run], out_dir: pathlib.Path) -> list[doc.Block]:
  blocks: list[doc.Block] = [doc.Heading("Spike analysis images")]
  for run in runs:
    strips = _analysis_images(run, out_dir, ".png")
    if strips:
      blocks += [doc.Heading(run.label, level=3)] + strips
    else:
      blocks.append(doc.Paragraph(f"{run.label}: no PNG files in analysis/."))
  return blocks


def _analysis_images(run: Run, out_dir: pathlib.Path, suffix: str) -> list[doc.Block]:
  """Copies the run's analysis/ files with `suffix` (at most MAX_ANALYSIS_IMAGES) into the report.

  Returns their image blocks and a line that counts the files left out, or [] if there are none.
  """
  files = [path for path in run.analysis_files if path.suffix.lower() == suffix]
  blocks: list[doc.Block] = []
  for file in files[:MAX_ANALYSIS_IMAGES]:
    name = file.relative_to(run.path / "analysis").as_posix()
    relative = _copy_image(file, out_dir, run.slug, "analysis", name)
    blocks.append(doc.Image(relative, f"{run.label} analysis/{name}", f"analysis/{name}"))
  if len(files) > MAX_ANALYSIS_IMAGES:
    blocks.append(doc.Paragraph(
        f"{len(files) - MAX_ANALYSIS_IMAGES} more {suffix} files in {run.path / 'analysis'}."))
  return blocks
