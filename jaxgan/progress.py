"""Progress reports: steps/s and ETA as log lines, or one redrawn line on a terminal."""

import math
import sys
import time

from absl import logging



def format_duration(seconds: float) -> str:
  """Formats seconds as H:MM:SS, or "unknown" for NaN and infinity (no steps timed yet)."""
  if not math.isfinite(seconds):
    return "unknown"
  seconds = max(int(seconds), 0)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
  """Tracks the step rate and reports progress every logged step and at each epoch's end.

  On a terminal (stderr is a TTY), the step reports redraw one line in place. Elsewhere each
  report is a log line, so that files and CI logs stay readable.
  """

  def __init__(self, total_steps: int, steps_per_epoch: int, start_step: int,
               metrics: tuple[str, ...] = ("d_loss", "g_loss", "d_real", "d_fake")):
    """`metrics` are the names shown in each line, in order, when present in the means."""
    self.total_steps = total_steps
    self.metrics = metrics
    self.steps_per_epoch = steps_per_epoch
    self.interactive = sys.stderr.isatty()
    self._last_time = time.perf_counter()
    self._last_step = start_step

  def log(self, step: int, epoch: int, means: dict[str, float]) -> float:
    """Reports step `step` of 0-based `epoch`; returns the steps/s since the previous report."""
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, step
    eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
    summary = self._format(means)
    in_epoch = step - epoch * self.steps_per_epoch
    line = (f"epoch {epoch + 1} step {step}/{self.total_steps} ({in_epoch}/{self.steps_per_epoch} "
            f"in epoch) {summary} | {rate:.2f} steps/s, ETA {format_duration(eta)}")
    if "input_wait_fraction" in means:
      line += f", input wait {means['input_wait_fraction']:.0%}"
    if self.interactive:
      sys.stderr.write("\r\033[K" + line)
      sys.stderr.flush()
    else:
      logging.info("%s", line)
    return rate

  def end_epoch(self, epoch: int, means: dict[str, float], seconds: float) -> None:
    if self.interactive:
      sys.stderr.write("\n")
    summary = self._format(means)
    logging.info("Epoch %d done in %.1f s: %s", epoch + 1, seconds, summary)

  def _format(self, means: dict[str, float]) -> str:
    return " ".join(f"{k} {means[k]:.4f}" for k in self.metrics if k in means)
