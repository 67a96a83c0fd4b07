"""Figures of the comparison report: curves of several runs overlaid, and sample-grid GIFs."""

import pathlib
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from PIL import Image

from jaxgan import plots
from jaxgan.report.runs import Run

# Each panel is 6 x 4.5 inches; at 100 dpi a two-panel figure is 1200 x 450 pixels.
_PANEL_INCHES = (6.0, 4.5)
_DPI = 100
_EVENT_MARKERS = {"spike": "^", "collapse": "X"}

# Bounds on the sample-grid GIF: at most this many frames, each at most this wide (a 5x5 grid of
# 128-pixel images is 652 pixels wide, and is halved).
MAX_GIF_FRAMES = 40
MAX_GIF_WIDTH = 400
GIF_FRAME_MS = 250


def run_colors(count: int) -> list[tuple[float, ...]]:
  """Returns one colour per run, the same in every figure of a report."""
  palette = colormaps["tab10"] if count <= 10 else colormaps["tab20"]
  return [palette(index % palette.N) for index in range(count)]


def plot_overlay(
    runs: Sequence[Run],
    panels: Sequence[tuple[str, str]],
    path: pathlib.Path,
    y_limits: tuple[float, float] | None = None,
) -> None:
  """Draws one panel per (history key, title), each with one line per run, into a PNG.

  Events of a run (spikes and collapses from its events.jsonl) are marked on each of its lines
  at the event's epoch, whichever curve the event was detected on, so that all panels show when
  it happened. The events table names the curve.
  """
  figure = Figure(figsize=(_PANEL_INCHES[0] * len(panels), _PANEL_INCHES[1]), dpi=_DPI,
                  layout="constrained")
  FigureCanvasAgg(figure)
  colors = run_colors(len(runs))
  kinds_drawn = set()
  for index, (key, title) in enumerate(panels):
    axes = figure.add_subplot(1, len(panels), index + 1)
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    for run, color in zip(runs, colors):
      epochs = np.asarray(run.history.get("epoch", []), dtype=np.float64)
      values = np.asarray(run.history.get(key, []), dtype=np.float64)
      if values.size == 0 or values.size != epochs.size:
        axes.plot([], [], color=color, label=f"{run.label} (no data)")
        continue
      axes.plot(epochs, values, color=color, linewidth=1.5, label=run.label,
                marker="o" if values.size == 1 else None)
      kinds_drawn |= _draw_events(axes, run, epochs, values, color)
    if y_limits is not None:
      axes.set_ylim(*y_limits)
    handles, _ = axes.get_legend_handles_labels()
    handles += [Line2D([], [], color="black", marker=_EVENT_MARKERS[kind], linestyle="none",
                       label=kind) for kind in sorted(kinds_drawn)]
    axes.legend(handles=handles, loc="best", fontsize=8)
  path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(path, format="png", dpi=_DPI)


def _draw_events(axes, run: Run, epochs: np.ndarray, values: np.ndarray, color) -> set[str]:
  """Marks the run's events on its line; returns the event kinds drawn."""
  drawn = set()
  for kind, marker in _EVENT_MARKERS.items():
    xs, ys = [], []
    for event in run.events or []:
      if event["kind"] != kind:
        continue
      matches = np.nonzero(epochs == event["epoch"])[0]
      if matches.size and np.isfinite(values[matches[0]]):
        xs.append(epochs[matches[0]])
        ys.append(values[matches[0]])
    if xs:
      axes.plot(xs, ys, linestyle="none", marker=marker, markersize=9, color=color,
                markeredgecolor="black")
      drawn.add(kind)
  return drawn


def gif_frame_epochs(epochs: Sequence[int], max_frames: int = MAX_GIF_FRAMES) -> list[int]:
  """Picks at most `max_frames` evenly spaced epochs of `epochs` (sorted), first and last kept."""
  epochs = sorted(epochs)
  if len(epochs) <= max_frames:
    return epochs
  indices = np.unique(np.round(np.linspace(0, len(epochs) - 1, max_frames)).astype(int))
  return [epochs[i] for i in indices]


def write_samples_gif(samples: dict[int, pathlib.Path], path: pathlib.Path) -> list[int]:
  """Writes a GIF of the sample grids over the run; returns the epochs used as frames.

  Frames are shrunk to MAX_GIF_WIDTH pixels at most, and all take the size of the first frame.
  """
  epochs = gif_frame_epochs(list(samples))
  frames, size = [], None
  for epoch in epochs:
    with Image.open(samples[epoch]) as image:
      image = image.convert("RGB")
      if size is None:
        scale = min(1.0, MAX_GIF_WIDTH / image.width)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
      if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
      frames.append(np.asarray(image, dtype=np.uint8))
  plots.save_gif(frames, path, duration_ms=GIF_FRAME_MS)
  return epochs
