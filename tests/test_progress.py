"""Tests for the progress log line of jaxgan/progress.py."""

import logging

from jaxgan import progress


def _log_line(caplog, means):
  display = progress.Progress(total_steps=100, steps_per_epoch=10, start_step=0)
  display.interactive = False
  # The absl logger's own level is set too: other tests in the same process may have raised it.
  with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="absl"):
    display.log(5, 0, means)
  return caplog.records[-1].getMessage()


def test_log_line_shows_input_wait(caplog):
  line = _log_line(caplog, {"d_loss": 1.0, "input_wait_fraction": 0.25})
  assert "input wait 25%" in line
  assert "d_loss 1.0000" in line


def test_log_line_without_input_wait(caplog):
  line = _log_line(caplog, {"d_loss": 1.0})
  assert "input wait" not in line
  assert "steps/s" in line
