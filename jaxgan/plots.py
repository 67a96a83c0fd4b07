"""Image grids, GIFs and training-curve plots that the trainer writes after each epoch.

The functions take numpy arrays and import no JAX, so they run on the host only. Figures are
`matplotlib.figure.Figure` objects drawn by `FigureCanvasAgg`, not pyplot figures, so no figure
is registered in pyplot's global state and none stays open.

Every file is written to a temporary file in the target folder, flushed to disk and renamed over
the target with `os.replace`. So a reader never sees a half-written file, and a process that dies
while writing leaves the previous version in place.
"""

import contextlib
import os
import pathlib
import secrets
from collections.abc import Callable, Sequence
from typing import BinaryIO

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

# plot_curves output: 9 x 5 inches at 100 dpi is 900 x 500 pixels.
_FIGURE_SIZE_INCHES = (9.0, 5.0)
_FIGURE_DPI = 100

_LOSSES_FILE = "losses.png"
_SCORES_FILE = "scores.png"
_SCORE_KEYS = ("d_real", "d_fake")


def make_grid(
    images: np.ndarray,
    rows: int,
    cols: int,
    padding: int = 2,
    pad_value: int = 255,
) -> np.ndarray:
  """Tile images row by row into one uint8 RGB grid.

  All images are min-max scaled together to [0, 255], with one min and one max over the whole
  batch, so relative brightness between images is kept. Non-finite pixels (NaN, +-Inf) become 0
  and are left out of the min and max. If the finite pixels are all equal (or there are none),
  they become 128.

  Args:
    images: float or integer array [N, H, W, 3] in any range, with N <= rows * cols.
    rows: number of grid rows, at least 1.
    cols: number of grid columns, at least 1.
    padding: pixels between cells and around the border, at least 0.
    pad_value: grey level 0..255 of the padding and of the cells after the last image.

  Returns:
    uint8 array [rows*H + (rows+1)*padding, cols*W + (cols+1)*padding, 3].

  Raises:
    ValueError: if `images` is not [N, H, W, 3], N > rows * cols, or an argument is out of range.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"make_grid expects images of shape [N, H, W, 3], got {images.shape}")
  if rows < 1 or cols < 1:
    raise ValueError(f"rows and cols must be at least 1, got rows={rows}, cols={cols}")
  if padding < 0:
    raise ValueError(f"padding must be at least 0, got {padding}")
  if not 0 <= pad_value <= 255:
    raise ValueError(f"pad_value must be in 0..255, got {pad_value}")
  count, height, width, _ = images.shape
  if count > rows * cols:
    raise ValueError(
        f"{count} images do not fit a {rows}x{cols} grid of {rows * cols} cells. "
        "Pass fewer images or a larger grid.")

  scaled = _scale_to_uint8(images)

  grid_height = rows * height + (rows + 1) * padding
  grid_width = cols * width + (cols + 1) * padding
  grid = np.full((grid_height, grid_width, 3), pad_value, dtype=np.uint8)
  for index in range(count):
    row, col = divmod(index, cols)
    top = padding + row * (height + padding)
    left = padding + col * (width + padding)
    grid[top:top + height, left:left + width] = scaled[index]
  return grid


def _scale_to_uint8(images: np.ndarray) -> np.ndarray:
  """Min-max scale all finite pixels together to 0..255, and set non-finite pixels to 0."""
  values = images.astype(np.float64)
  finite = np.isfinite(values)
  result = np.zeros(values.shape, dtype=np.uint8)
  if not finite.any():
    return result

  low = values[finite].min()
  high = values[finite].max()
  if low == high:
    result[finite] = 128
    return result

  # Dividing by the largest magnitude first keeps `high - low` finite for values near the float64
  # limit, where it would overflow to Inf and turn every pixel into 0.
  magnitude = max(abs(low), abs(high))
  low, high = low / magnitude, high / magnitude
  normalized = (values[finite] / magnitude - low) / (high - low)
  result[finite] = np.clip(np.rint(normalized * 255.0), 0, 255).astype(np.uint8)
  return result


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
  """Write a uint8 [H, W, 3] image to a PNG file, creating parent folders.

  The image goes to a temporary file in the same folder, which then replaces `path` with
  `os.replace`. So a reader never sees a half-written PNG.

  Raises:
    ValueError: if `image` is not a uint8 array of shape [H, W, 3].
  """
  image = np.asarray(image)
  _check_rgb_uint8(image, "image")
  pil_image = Image.fromarray(image)
  _write_atomically(path, lambda file: pil_image.save(file, format="PNG"))


def save_gif(
    frames: list[np.ndarray],
    path: str | os.PathLike,
    duration_ms: int = 200,
    loop: int = 0,
) -> None:
  """Write uint8 [H, W, 3] frames to an animated GIF, creating parent folders.

  The file is replaced atomically, like in `save_png`.

  GIF stores at most 256 colours per frame, so Pillow quantizes each frame and the colours are not
  exact. GIF stores durations in hundredths of a second, so `duration_ms` is rounded to 10 ms.

  NOTE: Pillow (checked with 13.0) merges consecutive identical frames into one frame that lasts
  as long as all of them together. The animation plays the same, but `n_frames` of the file can be
  smaller than `len(frames)`.

  Args:
    frames: images of one shape [H, W, 3] and dtype uint8, in playing order.
    path: output file.
    duration_ms: display time of each frame in milliseconds, at least 1.
    loop: number of times to play the animation, 0 meaning forever.

  Raises:
    ValueError: if `frames` is empty, a frame is not uint8 [H, W, 3], the frames differ in shape,
      or `duration_ms` or `loop` is out of range.
  """
  if not frames:
    raise ValueError("save_gif needs at least one frame, got an empty list")
  if duration_ms < 1:
    raise ValueError(f"duration_ms must be at least 1, got {duration_ms}")
  if loop < 0:
    raise ValueError(f"loop must be 0 (forever) or a positive count, got {loop}")

  arrays = [np.asarray(frame) for frame in frames]
  for index, frame in enumerate(arrays):
    _check_rgb_uint8(frame, f"frames[{index}]")
    if frame.shape != arrays[0].shape:
      raise ValueError(
          f"frames[{index}] has shape {frame.shape} but frames[0] has shape {arrays[0].shape}. "
          "All frames must have the same shape.")

  pil_frames = [Image.fromarray(frame) for frame in arrays]

  def write(file: BinaryIO) -> None:
    pil_frames[0].save(
        file,
        format="GIF",
        save_all=True,
        append_images=pil_frames[1:],
        duration=duration_ms,
        loop=loop,
    )

  _write_atomically(path, write)


def plot_curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    title: str,
    xlabel: str = "epoch",
    ylabel: str = "",
    log_y: bool = False,
    markers: Sequence[tuple[float, str]] = (),
) -> None:
  """Draw named (x, y) series as lines in one 900x500 PNG, with a legend and a grid.

  Points whose x or y is NaN or +-Inf are left out, and the line joins the points around them.
  With `log_y`, points with y <= 0 are left out as well. A series with no points left keeps its
  legend entry, followed by the reason, for example "(no finite values)". If every series is
  empty (or there are none), the figure shows the text "no data yet" instead of raising, so it
  can be called before the first epoch ends.

  Args:
    series: maps a legend label to its x and y values, which must have equal lengths.
    path: output PNG file; parent folders are created and the file is replaced atomically.
    title: figure title.
    xlabel: x-axis label.
    ylabel: y-axis label.
    log_y: whether the y axis is logarithmic.
    markers: (x, label) pairs, each drawn as a vertical dashed line with its label along it,
      for example to mark a loss spike. Markers with a non-finite x are skipped.

  Raises:
    ValueError: if a series' x and y are not 1-D or differ in length.
  """
  figure = _draw_curves(series, title, xlabel, ylabel, log_y, markers, y_limits=None)
  _save_figure(figure, path)


def plot_training_curves(
    history: dict[str, list[float]],
    out_dir: str | os.PathLike,
    x_key: str = "epoch",
) -> list[pathlib.Path]:
  """Plot the per-epoch loss and discriminator-score curves of a training history.

  Writes `out_dir/losses.png` with d_loss, g_loss and every other key ending in "_loss", if any
  such key exists. Writes `out_dir/scores.png` with d_real and d_fake, the mean D(x) and D(G(z)),
  on a y axis from 0 to 1, if both keys exist. Scores outside [0, 1] (for example from a WGAN
  critic) fall outside the visible range. Other keys are ignored.

  Args:
    history: equal-length lists of per-epoch means, for example
      {"epoch": [1, 2], "d_loss": [0.7, 0.6], "g_loss": [0.8, 0.9], "d_real": [...], ...}.
    out_dir: folder for the PNG files, created if missing.
    x_key: the history key that contains the x values.

  Returns:
    The paths written, losses.png first, or an empty list if the history has none of these keys.

  Raises:
    ValueError: if the lists differ in length (naming the key), or a plot is due and `x_key` is
      missing from the history.
  """
  _check_equal_lengths(history, x_key)

  loss_keys = [key for key in ("d_loss", "g_loss") if key in history]
  loss_keys += [
      key for key in history if key.endswith("_loss") and key not in ("d_loss", "g_loss")
  ]
  has_scores = all(key in history for key in _SCORE_KEYS)
  if not loss_keys and not has_scores:
    return []
  if x_key not in history:
    raise ValueError(
        f"x_key {x_key!r} is missing from the history, which has keys {sorted(history)}. "
        "Pass the key that contains the epoch numbers.")

  out_dir = pathlib.Path(out_dir)
  x_values = history[x_key]
  written = []
  if loss_keys:
    path = out_dir / _LOSSES_FILE
    loss_series = {key: (x_values, history[key]) for key in loss_keys}
    plot_curves(loss_series, path, title="Losses", xlabel=x_key, ylabel="loss")
    written.append(path)
  if has_scores:
    path = out_dir / _SCORES_FILE
    score_series = {
        "d_real: D(x)": (x_values, history["d_real"]),
        "d_fake: D(G(z))": (x_values, history["d_fake"]),
    }
    figure = _draw_curves(
        score_series,
        title="Discriminator scores",
        xlabel=x_key,
        ylabel="mean score",
        log_y=False,
        markers=(),
        y_limits=(0.0, 1.0),
    )
    _save_figure(figure, path)
    written.append(path)
  return written


def _check_equal_lengths(history: dict[str, list[float]], x_key: str) -> None:
  """Raise ValueError naming the first key whose list length differs from the reference key's."""
  if not history:
    return
  reference_key = x_key if x_key in history else next(iter(history))
  expected = len(history[reference_key])
  for key, values in history.items():
    if len(values) != expected:
      raise ValueError(
          f"history[{key!r}] has {len(values)} values but history[{reference_key!r}] has "
          f"{expected}. Every list must contain one value per epoch.")


def _draw_curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    log_y: bool,
    markers: Sequence[tuple[float, str]],
    y_limits: tuple[float, float] | None,
) -> Figure:
  """Build the plot_curves figure, with the y range fixed to `y_limits` when given."""
  figure = Figure(figsize=_FIGURE_SIZE_INCHES, dpi=_FIGURE_DPI, layout="constrained")
  FigureCanvasAgg(figure)
  axes = figure.add_subplot()
  axes.set_title(title)
  axes.set_xlabel(xlabel)
  axes.set_ylabel(ylabel)
  axes.grid(True, alpha=0.3)

  plotted_points = 0
  for label, (x_values, y_values) in series.items():
    x, y = _finite_points(label, x_values, y_values, positive_only=log_y)
    plotted_points += x.size
    if x.size == 0:
      # An empty line keeps the series in the legend, with the reason it has no line.
      axes.plot([], [], label=f"{label} ({_empty_reason(y_values, log_y)})")
      continue
    # A single point has no line segment, so it gets a marker to stay visible.
    axes.plot(x, y, label=label, marker="o" if x.size == 1 else None, linewidth=1.5)

  if plotted_points == 0:
    all_empty = all(len(y_values) == 0 for _, y_values in series.values())
    text = "no data yet" if all_empty else "nothing to plot: no finite values"
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", fontsize=14,
              color="0.4")
  elif log_y:
    # Set only when there are positive points, because matplotlib warns on an empty log axis.
    axes.set_yscale("log")

  for marker_x, marker_label in markers:
    if not np.isfinite(marker_x):
      continue
    axes.axvline(marker_x, color="0.35", linestyle="--", linewidth=1.0)
    # The label runs up the left side of the line from the bottom of the axes, away from the
    # peak of an upward loss spike. A translucent box keeps it readable over other lines.
    axes.text(marker_x, 0.02, marker_label, transform=axes.get_xaxis_transform(),
              rotation=90, ha="right", va="bottom", fontsize=8, color="0.25",
              bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none",
                    "alpha": 0.7})

  if y_limits is not None:
    axes.set_ylim(*y_limits)
  if series:
    axes.legend(loc="best")
  return figure


def _finite_points(
    label: str,
    x_values: Sequence[float],
    y_values: Sequence[float],
    positive_only: bool,
) -> tuple[np.ndarray, np.ndarray]:
  """Return the points of one series with finite x and y (and y > 0 if `positive_only`)."""
  x = np.asarray(x_values, dtype=np.float64)
  y = np.asarray(y_values, dtype=np.float64)
  if x.ndim != 1 or y.ndim != 1:
    raise ValueError(
        f"series {label!r} must have 1-D x and y, got shapes {x.shape} and {y.shape}")
  if x.size != y.size:
    raise ValueError(
        f"series {label!r} has {x.size} x values but {y.size} y values, which must be equal")
  keep = np.isfinite(x) & np.isfinite(y)
  if positive_only:
    keep &= y > 0
  return x[keep], y[keep]


def _empty_reason(y_values: Sequence[float], log_y: bool) -> str:
  if len(y_values) == 0:
    return "no data yet"
  if log_y:
    return "no finite positive values"
  return "no finite values"


def _save_figure(figure: Figure, path: str | os.PathLike) -> None:
  _write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=_FIGURE_DPI))


def _check_rgb_uint8(image: np.ndarray, name: str) -> None:
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise ValueError(
        f"{name} must be a uint8 array of shape [H, W, 3], got {image.dtype} {image.shape}. "
        "make_grid returns this format.")


def _write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
  """Call `write` on a temporary file next to `path`, fsync it, and rename it to `path`.

  The temporary file is removed if an exception is raised, but a process killed mid-write leaves it
  behind. Its name starts with "." and has a random part, so concurrent writers to one path do not
  collide, and the last rename wins.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temp_path = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
  # Mode 0o666 minus the umask gives the same permissions as a file opened with open().
  descriptor = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(descriptor, "wb") as file:
      write(file)
      file.flush()
      os.fsync(file.fileno())
    os.replace(temp_path, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      temp_path.unlink()
    raise
