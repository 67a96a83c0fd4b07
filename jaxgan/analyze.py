"""Analysis of a run's loss spikes and collapse events, from its workdir, without changing it.

    python -m jaxgan.analyze --workdir runs/x [--out DIR] [--gif 116:224] [--window 10]
        [--threshold 6]

Prints a table of the events in workdir/events.jsonl. A run without that file (started before
the monitors existed) gets its epoch-scale spikes recomputed from the per-epoch history in the
newest checkpoint's Meta. The recomputation uses the same detector and the run's monitor settings
(or the base config's defaults), and --threshold replaces its spike threshold. Writes to --out
(default workdir/analysis):
  spike_eEEEE_<curve>_<scale>.png  sample grids before, at, just after the spike and once the
                                   curve has recovered
  spike_eEEEE_<curve>_<scale>.gif  sample grids from --window epochs before to --window after
  curves_losses.png, curves_scores.png  the per-epoch curves with every event marked
  epochs_A-B.gif                   with --gif A:B, the sample grids of epochs A to B

The workdir is only read: checkpoints are opened read-only, so a run can be analysed while it
trains. Exit status 2 with one error line for a missing workdir, no sample grids or a bad range.
"""

import argparse
import dataclasses
import glob
import os
import re
import sys
from collections.abc import Sequence

import numpy as np
from absl import logging
from PIL import Image
from PIL import ImageDraw

from jaxgan import monitors
from jaxgan import plots
from jaxgan.errors import JaxganError

_SAMPLE_PATTERN = re.compile(r"epoch_(\d+)\.png$")
_LABEL_HEIGHT = 14
_GAP = 6  # white pixels between the grids of a strip
_MAX_MARKER_LABEL = 40  # characters
# (file name, title, y label, curves) of the redrawn curve plots.
_CURVE_PLOTS = (("curves_losses.png", "Losses", "loss", ("d_loss", "g_loss")),
                ("curves_scores.png", "Discriminator scores", "mean score", ("d_real", "d_fake")))


class AnalysisError(JaxganError):
  """A workdir, sample range or option that the analysis cannot use."""


@dataclasses.dataclass
class RunRecord:
  """Events, per-epoch history and sample grids of one workdir, as the analysis reads them."""

  workdir: str
  history: dict[str, list[float]]  # per-epoch means from the newest checkpoint, or {}
  events: list[monitors.Event]
  events_source: str  # "events.jsonl" or a description of the recomputation
  threshold: float  # monitor.spike_threshold of the run, for the recovery test
  samples: dict[int, str]  # 1-based epoch -> path of its sample grid


def _monitor_settings(saved_config: dict | None):
  """Returns the run's monitor config, or the base config's for runs from before it existed."""
  from jaxgan.base_configs import dcgan  # pylint: disable=g-import-not-at-top

  config = dcgan.get_config()
  saved = (saved_config or {}).get("monitor", {})
  for key, value in saved.items():
    if key in config.monitor:
      config.monitor[key] = value
  return config


def _newest_meta(workdir: str):
  """Returns (step, Meta) of the newest checkpoint, read-only, or (None, None) when there is none."""
  if not os.path.isdir(os.path.join(workdir, "checkpoints")):
    return None, None
  from jaxgan import checkpoint  # pylint: disable=g-import-not-at-top

  checkpointer = checkpoint.Checkpointer(workdir, keep=1, read_only=True)
  try:
    step = checkpointer.latest_step()
    if step is None:
      return None, None
    return step, checkpointer.restore_meta(step)
  finally:
    checkpointer.close()


def recompute_events(history: dict[str, list[float]], config,
                     steps_per_epoch: int | None) -> list[monitors.Event]:
  """Runs the epoch-scale spike detector over a per-epoch history, as the trainer would have.

  Each event's step is its epoch's last step, or -1 when `steps_per_epoch` is unknown.
  """
  events = []
  epochs = history.get("epoch", [])
  for curve in monitors.SPIKE_CURVES:
    values = history.get(curve)
    if not values:
      continue
    detector = monitors.detector_from_config(config)
    for index, value in enumerate(values):
      deviation = detector.update(float(value))
      if deviation is None:
        continue
      epoch = int(epochs[index]) if index < len(epochs) else index + 1
      events.append(monitors.Event(
          kind="spike", epoch=epoch, step=epoch * steps_per_epoch if steps_per_epoch else -1, curve=curve, scale="epoch", value=deviation.value,
          median=deviation.median, mad=deviation.mad, magnitude=deviation.magnitude))
  events.sort(key=lambda event: (event.epoch, monitors.SPIKE_CURVES.index(event.curve)))
  return events


def find_samples(workdir: str) -> dict[int, str]:
  """Maps each epoch with a sample grid in workdir/samples to the grid's path."""
  samples = {}
  for path in glob.glob(os.path.join(workdir, "samples", "epoch_*.png")):
    match = _SAMPLE_PATTERN.search(os.path.basename(path))
    if match:
      samples[int(match.group(1))] = path
  return dict(sorted(samples.items()))


def load_run(workdir: str, threshold: float | None = None) -> RunRecord:
  """Reads events, history and sample grids; raises AnalysisError for an unusable workdir.

  `threshold`, if given, replaces the run's spike threshold when events are recomputed and when
  recovery is tested.
  """
  if not os.path.isdir(workdir):
    raise AnalysisError(f"Workdir not found: {workdir}. Pass the --workdir of a training run.")
  samples = find_samples(workdir)
  if not samples:
    raise AnalysisError(
        f"No sample grids in {os.path.join(workdir, 'samples')}: the run has not finished an "
        "epoch yet, or --workdir is not a training run's workdir.")

  step, meta = _newest_meta(workdir)
  history = meta.history if meta is not None else {}
  config = _monitor_settings(meta.config if meta is not None else None)
  if threshold is not None:
    config.monitor.spike_threshold = threshold
  events_path = os.path.join(workdir, monitors.EVENTS_FILE)
  if os.path.exists(events_path):
    events, source = monitors.read_events(events_path), monitors.EVENTS_FILE
  elif meta is not None:
    # A checkpoint at an epoch end gives the steps per epoch, if the batch size never changed.
    steps_per_epoch = step // meta.epoch if meta.epoch and not meta.batch_in_epoch else None
    events = recompute_events(history, config, steps_per_epoch)
    monitor = config.monitor
    source = (f"recomputed from the per-epoch history in checkpoint {step} (epoch scale only; "
              f"threshold {monitor.spike_threshold:g}, window {monitor.spike_window}, "
              f"min history {monitor.spike_min_history})")
  else:
    events, source = [], "none: no events.jsonl and no checkpoint to recompute from"
  return RunRecord(workdir=workdir, history=history, events=events, events_source=source,
                   threshold=config.monitor.spike_threshold, samples=samples)


def recovered_epoch(history: dict[str, list[float]], event: monitors.Event,
                    threshold: float) -> int | None:
  """Returns the first epoch after the event whose mean of the event's curve is within
  `threshold` of the event's median, in units of its MAD, or None if the curve never returns.

  For a step-scale event the epoch means are compared with the step windows' median and MAD,
  which is more lenient because epoch means are less noisy.
  """
  values = history.get(event.curve, [])
  epochs = history.get("epoch", list(range(1, len(values) + 1)))
  for epoch, value in zip(epochs, values):
    if epoch > event.epoch and abs(value - event.median) <= threshold * event.mad:
      return int(epoch)
  return None


def format_table(events: Sequence[monitors.Event]) -> str:
  """Returns the events as a plain text table, one line each."""
  header = (f"{'kind':<8} {'epoch':>5} {'step':>8} {'curve':<15} {'scale':<5} {'value':>10} "
            f"{'median':>10} {'mad':>10} {'magnitude':>9}  pinned_steps")
  lines = [header]
  for e in events:
    step = str(e.step) if e.step >= 0 else "-"
    pinned = ",".join(str(s) for s in e.pinned_steps) or "-"
    lines.append(f"{e.kind:<8} {e.epoch:>5} {step:>8} {e.curve:<15} {e.scale:<5} "
                 f"{e.value:>10.4g} {e.median:>10.4g} {e.mad:>10.4g} {e.magnitude:>+9.2f}  "
                 f"{pinned}")
  return "\n".join(lines)


def _labelled(image: np.ndarray, label: str) -> np.ndarray:
  """Returns the image below a white band that contains `label`."""
  band = Image.new("RGB", (image.shape[1], _LABEL_HEIGHT), "white")
  ImageDraw.Draw(band).text((2, 1), label, fill="black")
  return np.concatenate([np.asarray(band), image], axis=0)


def _read_grid(path: str) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


def _nearest(samples: dict[int, str], epoch: int | None, direction: int) -> int | None:
  """Returns the sample epoch at `epoch`, else the nearest before (-1) or after (+1) it."""
  if epoch is None:
    return None
  if epoch in samples:
    return epoch
  candidates = [e for e in samples if (e - epoch) * direction > 0]
  if not candidates:
    return None
  return max(candidates) if direction < 0 else min(candidates)


def write_strip(run: RunRecord, event: monitors.Event, path: str) -> None:
  """Writes the grids before, at, just after the event and at recovery side by side."""
  recovered = recovered_epoch(run.history, event, run.threshold)
  panels = [
      ("before", _nearest(run.samples, event.epoch - 1, -1)),
      ("spike", _nearest(run.samples, event.epoch, +1)),
      ("after", _nearest(run.samples, event.epoch + 1, +1)),
      ("recovered", _nearest(run.samples, recovered, +1)),
  ]
  shape = _read_grid(next(iter(run.samples.values()))).shape
  images = []
  for name, epoch in panels:
    if epoch is None:
      panel = _labelled(np.full(shape, 200, dtype=np.uint8), f"{name}: no grid")
    else:
      panel = _labelled(_read_grid(run.samples[epoch]), f"{name}: epoch {epoch}")
    images += [panel, np.full((panel.shape[0], _GAP, 3), 255, dtype=np.uint8)]
  strip = np.concatenate(images[:-1], axis=1)
  title = (f"{event.curve} {event.kind} at epoch {event.epoch} ({event.scale} scale, "
           f"{event.magnitude:+.1f} MADs)")
  plots.save_png(_labelled(strip, title), path)


def write_epoch_gif(samples: dict[int, str], first: int, last: int, path: str,
                    highlight: int | None = None) -> int:
  """Writes a GIF of the sample grids of epochs first..last; returns the number of frames."""
  epochs = [e for e in samples if first <= e <= last]
  if not epochs:
    raise AnalysisError(
        f"No sample grids between epochs {first} and {last}; the run has grids for epochs "
        f"{min(samples)} to {max(samples)}.")
  frames = []
  for epoch in epochs:
    label = f"epoch {epoch}" + (" (event)" if epoch == highlight else "")
    frames.append(_labelled(_read_grid(samples[epoch]), label))
  plots.save_gif(frames, path, duration_ms=300)
  return len(frames)


def write_marked_curves(history: dict[str, list[float]], events: Sequence[monitors.Event],
                        out: str) -> list[str]:
  """Redraws the loss and score curves with a line at each event's epoch, labelled with the
  curves flagged there (the table lists the magnitudes)."""
  names: dict[int, list[str]] = {}
  for event in events:
    name = "collapse" if event.kind == "collapse" else event.curve
    if name not in names.setdefault(event.epoch, []):
      names[event.epoch].append(name)
  markers = []
  for epoch, epoch_names in sorted(names.items()):
    label = f"e{epoch}: " + ", ".join(epoch_names)
    # A label longer than the axes is tall makes matplotlib give up on the layout.
    if len(label) > _MAX_MARKER_LABEL:
      label = f"e{epoch}: {len(epoch_names)} curves"
    markers.append((float(epoch), label))
  epochs = history.get("epoch", [])
  written = []
  for file_name, title, ylabel, curves in _CURVE_PLOTS:
    series = {c: (epochs, history[c]) for c in curves if c in history}
    if not series:
      continue
    path = os.path.join(out, file_name)
    plots.plot_curves(series, path, title=f"{title} with monitor events", ylabel=ylabel,
                      markers=markers)
    written.append(path)
  return written


def _parse_range(text: str) -> tuple[int, int]:
  match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
  if not match or int(match.group(1)) > int(match.group(2)) or int(match.group(1)) < 1:
    raise AnalysisError(
        f"Invalid --gif {text!r}: expected FIRST:LAST epochs with 1 <= FIRST <= LAST, for "
        "example --gif 116:224.")
  return int(match.group(1)), int(match.group(2))


def analyze(workdir: str, out: str | None, gif: str | None, window: int,
            threshold: float | None = None) -> str:
  """Runs the whole analysis and returns the report text that the CLI prints."""
  if window < 0:
    raise AnalysisError(f"Invalid --window {window}: it must be 0 or more epochs.")
  if threshold is not None and not threshold > 0:
    raise AnalysisError(f"Invalid --threshold {threshold}: it must be a number > 0.")
  gif_range = _parse_range(gif) if gif else None
  run = load_run(os.path.abspath(workdir), threshold)
  out = os.path.abspath(out or os.path.join(run.workdir, "analysis"))

  lines = [f"Events: {len(run.events)}, {run.events_source}"]
  if run.events:
    lines.append(format_table(run.events))
  written = []
  for event in run.events:
    if event.kind != "spike":
      continue
    name = f"spike_e{event.epoch:04d}_{event.curve}_{event.scale}"
    strip_path = os.path.join(out, name + ".png")
    write_strip(run, event, strip_path)
    gif_path = os.path.join(out, name + ".gif")
    write_epoch_gif(run.samples, event.epoch - window, event.epoch + window, gif_path,
                    highlight=event.epoch)
    written += [strip_path, gif_path]
  if run.history:
    written += write_marked_curves(run.history, run.events, out)
  if gif_range:
    path = os.path.join(out, f"epochs_{gif_range[0]}-{gif_range[1]}.gif")
    count = write_epoch_gif(run.samples, *gif_range, path)
    lines.append(f"GIF of {count} grid(s): {path}")
    written.append(path)
  lines.append(f"Wrote {len(written)} file(s) to {out}")
  return "\n".join(lines)


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m jaxgan.analyze",
      description="List a run's loss spikes and collapse events and draw their sample grids.")
  parser.add_argument("--workdir", required=True, help="Workdir of a training run (read only).")
  parser.add_argument("--out", default=None,
                      help="Folder for the strips, GIFs and curves (default WORKDIR/analysis).")
  parser.add_argument("--gif", default=None, metavar="FIRST:LAST",
                      help="Also write a GIF of the sample grids of epochs FIRST to LAST.")
  parser.add_argument("--window", type=int, default=10,
                      help="Epochs before and after each spike in its GIF (default 10).")
  parser.add_argument("--threshold", type=float, default=None,
                      help="Spike threshold in robust standard deviations for runs without "
                           "events.jsonl, and for the recovery test (default: the run's "
                           "monitor.spike_threshold).")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the CLI; returns the exit status (2 with one error line for bad input)."""
  args = _parse_args(sys.argv[1:] if argv is None else argv)
  # Orbax logs every checkpoint it opens, and warns that a read-only one is read-only. The
  # previous verbosity comes back afterwards, for callers that run main() in their own process.
  absl_logger = logging.get_absl_logger()
  previous_level = absl_logger.level
  logging.set_verbosity(logging.ERROR)
  try:
    report = analyze(args.workdir, args.out, args.gif, args.window, args.threshold)
  except JaxganError as error:
    sys.stderr.write(f"Error: {error}\n")
    return 2
  finally:
    absl_logger.setLevel(previous_level)
  print(report)
  return 0


if __name__ == "__main__":
  sys.exit(main())
