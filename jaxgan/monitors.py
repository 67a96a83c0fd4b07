"""Training monitors: robust loss-spike detection and a mode-collapse check on the sample grid.

A spike is a value far from the recent past of its curve. Its deviation is measured from the median
of the previous `window` values, in units of their median absolute deviation (MAD) times 1.4826.
That scaled MAD estimates the standard deviation of normal noise. Median and MAD ignore earlier spikes, and a slow
trend moves the median along, so neither causes an alarm.

The mode-collapse check compares the diversity of the fixed-latent sample grid with the same
measure on a fixed set of real training images. A generator that has collapsed to a few outputs
gives a ratio near 0, and one as varied as the data gives about 1.

Each event becomes one line of `workdir/events.jsonl`, a JSON object with the keys of `Event`:
  kind          "spike" or "collapse"
  epoch         1-based epoch in which the event was detected
  step          global train step at detection
  curve         "d_loss", "g_loss", "d_real", "d_fake", or "diversity_ratio" for collapse
  scale         "epoch" (per-epoch means) or "steps" (means over monitor.window_steps steps)
  value         the curve's value that was tested
  median, mad   median of the previous values and their scaled MAD (the floor applied). For a
                collapse event, median is the configured monitor.collapse_ratio and mad is 0.
  magnitude     (value - median) / mad for a spike, the diversity ratio for a collapse
  pinned_steps  checkpoint steps pinned because of the event, else []
"""

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import ml_collections
import numpy as np

from jaxgan.evaluation import diversity

# Curves that the spike detector watches, each at the epoch and the step-window scale.
SPIKE_CURVES = ("d_loss", "g_loss", "d_real", "d_fake")
# Turns a MAD into a standard-deviation estimate: 1 / Phi^-1(3/4) for normal noise.
MAD_TO_STD = 1.4826
# Smallest scale used when the MAD and the median are both 0, so a deviation stays finite.
_MIN_SCALE = 1e-12
EVENTS_FILE = "events.jsonl"
COLLAPSE_CURVE = "diversity_ratio"


@dataclasses.dataclass(frozen=True)
class Deviation:
  """How far one value lies from the previous values of its curve."""

  value: float
  median: float
  mad: float  # scaled MAD with the floor applied, so never 0
  magnitude: float  # (value - median) / mad, signed


def robust_deviation(previous: Sequence[float], value: float, mad_floor: float) -> Deviation:
  """Measures `value` against the median and scaled MAD of `previous` (at least one value).

  The scale is at least `mad_floor * |median|`, so a curve that stayed constant (MAD 0) does not
  turn the smallest change into a spike.
  """
  history = np.asarray(previous, dtype=np.float64)
  median = float(np.median(history))
  mad = MAD_TO_STD * float(np.median(np.abs(history - median)))
  scale = max(mad, mad_floor * abs(median), _MIN_SCALE)
  return Deviation(value=float(value), median=median, mad=scale,
                   magnitude=(float(value) - median) / scale)


class SpikeDetector:
  """Flags values of one curve that deviate more than `threshold` scaled MADs from its recent past.

  Only the newest `window` values are kept. Nothing is flagged until `min_history` values have
  been seen. Every value, flagged or not, joins the window: the median and MAD are robust to
  the few spikes in it.
  """

  def __init__(self, window: int, min_history: int, threshold: float, mad_floor: float,
               history: Iterable[float] = ()):
    self.window = window
    self.min_history = min_history
    self.threshold = threshold
    self.mad_floor = mad_floor
    self.history = [float(v) for v in history][-window:]

  def update(self, value: float) -> Deviation | None:
    """Adds `value` to the window; returns its deviation if it is a spike, else None.

    A non-finite value is neither tested nor added, because the trainer stops or rolls back on
    one (train.on_nonfinite).
    """
    if not math.isfinite(value):
      return None
    deviation = None
    if len(self.history) >= self.min_history:
      deviation = robust_deviation(self.history, value, self.mad_floor)
    self.history = (self.history + [float(value)])[-self.window:]
    if deviation is not None and abs(deviation.magnitude) > self.threshold:
      return deviation
    return None


def find_spikes(values: Sequence[float], window: int, min_history: int, threshold: float,
                mad_floor: float) -> list[tuple[int, Deviation]]:
  """Runs a fresh SpikeDetector over `values`; returns (index, deviation) of each spike."""
  detector = SpikeDetector(window, min_history, threshold, mad_floor)
  spikes = []
  for index, value in enumerate(values):
    deviation = detector.update(float(value))
    if deviation is not None:
      spikes.append((index, deviation))
  return spikes


def enabled(config: ml_collections.ConfigDict) -> bool:
  """Returns True when the config has the spike and collapse monitor keys (monitor.spike_*).

  Families without them (SDPC), or with a monitor section of their own (CycleGAN), run no
  spike or collapse monitor.
  """
  return "monitor" in config and "spike_threshold" in config.monitor


def detector_from_config(config: ml_collections.ConfigDict,
                         history: Iterable[float] = ()) -> SpikeDetector:
  monitor = config.monitor
  return SpikeDetector(monitor.spike_window, monitor.spike_min_history, monitor.spike_threshold,
                       monitor.spike_mad_floor, history)


@dataclasses.dataclass
class Event:
  """A monitor event; `to_json` returns its line of events.jsonl."""

  kind: str
  epoch: int
  step: int
  curve: str
  scale: str
  value: float
  median: float
  mad: float
  magnitude: float
  pinned_steps: list[int] = dataclasses.field(default_factory=list)

  def to_json(self) -> str:
    fields = dataclasses.asdict(self)
    fields["pinned_steps"] = [int(s) for s in self.pinned_steps]
    return json.dumps(fields, sort_keys=False)

  def describe(self) -> str:
    if self.kind == "collapse":
      return (f"possible mode collapse at epoch {self.epoch} (step {self.step}): sample "
              f"diversity is {self.magnitude:.3f} of the real images', below {self.median:g}")
    return (f"{self.curve} spike at epoch {self.epoch} (step {self.step}, {self.scale} scale): "
            f"{self.value:.4g} vs median {self.median:.4g}, {self.magnitude:+.1f} MADs")


def append_events(workdir: str, events: Sequence[Event]) -> None:
  """Appends events to workdir/events.jsonl; the caller makes sure only process 0 calls it."""
  if not events:
    return
  with open(os.path.join(workdir, EVENTS_FILE), "a") as f:
    for event in events:
      f.write(event.to_json() + "\n")
    f.flush()
    os.fsync(f.fileno())


def read_events(path: str) -> list[Event]:
  """Reads events.jsonl, skipping lines that are not events, such as one cut short by a crash."""
  events = []
  with open(path) as f:
    for line in f:
      try:
        events.append(Event(**json.loads(line)))
      except (json.JSONDecodeError, TypeError):
        continue
  return events


def drop_events_after(workdir: str, step: int) -> int:
  """Removes events after `step` from workdir/events.jsonl; returns how many were removed.

  A resumed run repeats the steps after its checkpoint and detects their events again, so the
  copies written before the stop must go.
  """
  path = os.path.join(workdir, EVENTS_FILE)
  if not os.path.exists(path):
    return 0
  events = read_events(path)
  kept = [event for event in events if event.step <= step]
  with open(path) as f:
    num_lines = sum(1 for _ in f)
  if len(kept) == num_lines:
    return 0
  temporary = path + ".tmp"
  with open(temporary, "w") as f:
    f.writelines(event.to_json() + "\n" for event in kept)
  os.replace(temporary, path)
  return num_lines - len(kept)


class CollapseMonitor:
  """Compares the sample grid's diversity with that of fixed real images.

  An event fires when the ratio falls below `threshold` after the previous grid was at or above
  it. So an untrained generator, whose outputs are all alike, gives no event before its grid has
  once been diverse, and a long collapse gives one event, not one per grid.
  """

  def __init__(self, real_images: np.ndarray, threshold: float, armed: bool = False):
    self.real_diversity = diversity.mean_pairwise_distance(real_images)
    self.threshold = threshold
    self.armed = armed  # whether the previous grid was at or above the threshold

  def update(self, samples: np.ndarray) -> tuple[float, bool]:
    """Returns (diversity ratio of `samples`, whether a collapse starts with them).

    `samples` must be in the value range of the real images ([-1, 1] in the trainer).
    """
    ratio = diversity.mean_pairwise_distance(samples) / max(self.real_diversity, _MIN_SCALE)
    starts = self.armed and ratio < self.threshold
    self.armed = ratio >= self.threshold
    return ratio, starts


def reference_indices(num_images: int, count: int, seed: int) -> np.ndarray:
  """Returns the indices of the real images that the collapse monitor measures, fixed by seed."""
  rng = np.random.default_rng([seed, 0x5EED])
  return np.sort(rng.choice(num_images, size=min(count, num_images), replace=False))


def class_balanced_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
  """Returns the indices of up to `count` real images, drawn in equal shares from every class.

  A conditional sample grid has one row per class, so each class fills the same share of it.
  Drawing the real references the same way keeps a large class from setting the real diversity
  alone. The classes take turns in label order, each giving its next image in a shuffled order
  fixed by seed. A class that runs out drops from the turns, so the larger ones fill its place.

  NOTE: the grid's diversity includes the differences between classes. A generator that draws
  one image per class and ignores z keeps a ratio above 0, set by how far apart its class images
  are, so a low monitor.collapse_ratio may miss that collapse within each class.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng([seed, 0x5EED])
  shuffled = [rng.permutation(np.flatnonzero(labels == label)) for label in np.unique(labels)]
  turns = []
  for position in range(max((len(indices) for indices in shuffled), default=0)):
    turns.extend(int(indices[position]) for indices in shuffled if position < len(indices))
  return np.sort(np.asarray(turns[:count], dtype=np.int64))


class Monitors:
  """The spike detectors of every curve at both scales, and the collapse monitor.

  `state()` returns what the checkpoint Meta stores, so a resumed run continues the same windows.
  A config without a monitor section (a family whose base config has none) gets no monitors.
  """

  def __init__(self, config: ml_collections.ConfigDict, state: dict[str, Any],
               real_images: np.ndarray | None):
    saved_epoch = state.get("epoch", {})
    saved_steps = state.get("steps", {})
    curves = SPIKE_CURVES if enabled(config) else ()
    self.epoch_detectors = {
        curve: detector_from_config(config, saved_epoch.get(curve, ())) for curve in curves}
    self.step_detectors = {
        curve: detector_from_config(config, saved_steps.get(curve, ())) for curve in curves}
    self.collapse = None
    if not enabled(config):
      return
    if real_images is not None and config.monitor.collapse_ratio > 0:
      self.collapse = CollapseMonitor(real_images, config.monitor.collapse_ratio,
                                      bool(state.get("collapse_armed", False)))

  def state(self) -> dict[str, Any]:
    return {
        "epoch": {c: list(d.history) for c, d in self.epoch_detectors.items()},
        "steps": {c: list(d.history) for c, d in self.step_detectors.items()},
        "collapse_armed": bool(self.collapse.armed) if self.collapse else False,
    }

  def update_curves(self, means: dict[str, float], scale: str, epoch: int,
                    step: int) -> list[Event]:
    """Feeds the means of one epoch or step window; returns a spike event per flagged curve."""
    detectors = self.epoch_detectors if scale == "epoch" else self.step_detectors
    events = []
    for curve, detector in detectors.items():
      if curve not in means:
        continue
      deviation = detector.update(means[curve])
      if deviation is not None:
        events.append(Event(kind="spike", epoch=epoch, step=step, curve=curve, scale=scale,
                            value=deviation.value, median=deviation.median, mad=deviation.mad,
                            magnitude=deviation.magnitude))
    return events

  def update_samples(self, samples: np.ndarray, epoch: int,
                     step: int) -> tuple[float | None, list[Event]]:
    """Returns the diversity ratio of the grid (None when off) and a collapse event if one starts."""
    if self.collapse is None:
      return None, []
    ratio, starts = self.collapse.update(samples)
    if not starts:
      return ratio, []
    return ratio, [Event(kind="collapse", epoch=epoch, step=step, curve=COLLAPSE_CURVE,
                         scale="epoch", value=ratio, median=self.collapse.threshold, mad=0.0,
                         magnitude=ratio)]
