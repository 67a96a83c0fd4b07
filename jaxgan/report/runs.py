"""Reading a training workdir for the report: config, summary, history, samples, events, analysis.

Nothing here writes to the workdir, so a report can be made while the run is still training.
A piece that is missing (no summary yet, no sample grids, no events.jsonl) is recorded in
`Run.gaps` instead of raising, so that the page can state it.
"""

import dataclasses
import json
import math
import pathlib
import re
from typing import Any

from absl import logging

from jaxgan import config_lib
from jaxgan.errors import JaxganError

_SAMPLE_PATTERN = re.compile(r"^epoch_(\d+)\.png$")
_ANALYSIS_SUFFIXES = (".png", ".gif")
EVENT_KINDS = ("spike", "collapse")


class WorkdirError(JaxganError):
  """A path given as a run that is not a jaxgan workdir, or whose files cannot be read."""


@dataclasses.dataclass
class Run:
  """The parts of one workdir that the report shows.

  Attributes:
    path: the workdir, absolute.
    label: a short name that distinguishes the runs of one report (see `assign_labels`).
    config: the nested config of config.json.
    summary: summary.json, or None before the first epoch ends.
    history: per-epoch means {"epoch": [1, 2, ...], "d_loss": [...], ...}, possibly empty.
    history_source: where `history` came from, for the page ("summary.json", "checkpoint 120").
    samples: epoch number -> sample grid PNG.
    events: the valid records of events.jsonl, in file order; None when the file is absent.
    analysis_files: PNG and GIF files under analysis/, sorted by path.
    gaps: sentences that state what this run lacks, shown on the page.
  """

  path: pathlib.Path
  label: str
  config: dict[str, Any]
  summary: dict[str, Any] | None
  history: dict[str, list[float]]
  history_source: str
  samples: dict[int, pathlib.Path]
  events: list[dict[str, Any]] | None
  analysis_files: list[pathlib.Path]
  gaps: list[str]

  @property
  def flat_config(self) -> dict[str, Any]:
    return config_lib.flatten(self.config)

  @property
  def num_epochs(self) -> int | None:
    """Planned epochs: from summary.json, else from the config."""
    if self.summary and "num_epochs" in self.summary:
      return int(self.summary["num_epochs"])
    value = self.flat_config.get("train.num_epochs")
    return int(value) if isinstance(value, int) else None

  @property
  def epochs_done(self) -> int:
    return int(self.summary.get("epochs_done", 0)) if self.summary else 0

  @property
  def finished(self) -> bool:
    return self.num_epochs is not None and self.epochs_done >= self.num_epochs

  @property
  def slug(self) -> str:
    """The label with only [A-Za-z0-9._-], for file names in the report folder."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label).strip("_") or "run"


def load_run(path: str | pathlib.Path) -> Run:
  """Reads the workdir at `path`; raises WorkdirError when it is not one (no config.json)."""
  path = pathlib.Path(path).absolute()
  if not path.is_dir():
    raise WorkdirError(
        f"Run folder not found: {path}. Pass workdirs written by python -m jaxgan.main "
        "--workdir.")
  config = _read_json(path / "config.json")
  if not isinstance(config, dict):
    raise WorkdirError(
        f"Not a jaxgan workdir: {path} has no readable config.json. Pass the folder given to "
        "python -m jaxgan.main --workdir, which writes config.json when training starts.")

  gaps = []
  summary = _read_json(path / "summary.json")
  if not isinstance(summary, dict):
    summary = None
    gaps.append("No summary.json yet: no epoch has finished, so epochs and wall time are unknown.")

  history, history_source = _load_history(path, summary, gaps)
  samples = _find_samples(path)
  if not samples:
    gaps.append("No sample grids yet (samples/epoch_NNNN.png).")
  events = _read_events(path, gaps)
  analysis_files = sorted(
      p for p in (path / "analysis").rglob("*") if p.suffix.lower() in _ANALYSIS_SUFFIXES
  ) if (path / "analysis").is_dir() else []

  run = Run(path=path, label=path.name, config=config, summary=summary, history=history,
            history_source=history_source, samples=samples, events=events,
            analysis_files=analysis_files, gaps=gaps)
  if summary is not None and not run.finished:
    gaps.append(f"Unfinished: {run.epochs_done} of {run.num_epochs} epochs done.")
  return run


def assign_labels(runs: list[Run]) -> None:
  """Labels each run with the shortest path tail (folder name, then parent/name...) that is
  unique among `runs`, so that runs named alike in different folders stay apart."""
  depth = 1
  while True:
    labels = ["/".join(run.path.parts[-depth:]) for run in runs]
    if len(set(labels)) == len(labels) or depth >= max(len(run.path.parts) for run in runs):
      break
    depth += 1
  for run, label in zip(runs, labels):
    run.label = label
  # Identical paths given twice keep identical labels, but need distinct file names.
  seen: dict[str, int] = {}
  for run in runs:
    count = seen.get(run.label, 0)
    seen[run.label] = count + 1
    if count:
      run.label = f"{run.label} ({count + 1})"


def _read_json(path: pathlib.Path) -> Any:
  """Returns the parsed file, or None when it is missing or not valid JSON (written mid-way)."""
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    return None
  except (OSError, ValueError) as error:
    logging.warning("Could not read %s: %s", path, error)
    return None


def _valid_history(history: Any) -> bool:
  return (isinstance(history, dict) and "epoch" in history
          and all(isinstance(v, list) for v in history.values()))


def _load_history(path: pathlib.Path, summary: dict[str, Any] | None,
                  gaps: list[str]) -> tuple[dict[str, list[float]], str]:
  """Returns the per-epoch means and their source: summary.json, else the newest checkpoint.

  Runs started before summary.json stored the history still have it in each checkpoint's Meta,
  but only up to that checkpoint's epoch.
  """
  if summary is not None and _valid_history(summary.get("history")):
    return summary["history"], "summary.json"
  if (path / "checkpoints").is_dir():
    history, step = _history_from_checkpoint(path)
    if history is not None:
      epochs_in_history = len(history.get("epoch", []))
      if summary is not None and epochs_in_history < int(summary.get("epochs_done", 0)):
        gaps.append(
            f"Curves end at epoch {epochs_in_history}: summary.json has no history, and the "
            f"newest checkpoint (step {step}) was saved before epoch "
            f"{summary['epochs_done']} ended.")
      return history, f"checkpoint {step}"
  gaps.append("No per-epoch means: summary.json has no history and no checkpoint has one.")
  return {}, ""


def _history_from_checkpoint(path: pathlib.Path) -> tuple[dict[str, list[float]] | None, int]:
  """Returns (history, step) from the Meta of the newest readable checkpoint, or (None, -1)."""
  # Imported here because Orbax pulls in JAX, which only this fallback needs.
  from jaxgan import checkpoint  # pylint: disable=g-import-not-at-top

  checkpointer = checkpoint.Checkpointer(path, keep=1, read_only=True)
  try:
    # The newest first. A live run may delete an old checkpoint while it is read.
    for step in sorted(checkpointer.all_steps(), reverse=True):
      try:
        meta = checkpointer.restore_meta(step)
      except (OSError, ValueError, KeyError) as error:
        logging.warning("Could not read the metadata of checkpoint %s/%d: %s",
                        checkpointer.directory, step, error)
        continue
      if _valid_history(meta.history):
        return meta.history, step
    return None, -1
  finally:
    checkpointer.close()


def _find_samples(path: pathlib.Path) -> dict[int, pathlib.Path]:
  folder = path / "samples"
  if not folder.is_dir():
    return {}
  samples = {}
  for file in folder.iterdir():
    match = _SAMPLE_PATTERN.match(file.name)
    if match and file.is_file():
      samples[int(match.group(1))] = file
  return dict(sorted(samples.items()))


def _valid_event(record: Any) -> bool:
  if not isinstance(record, dict) or record.get("kind") not in EVENT_KINDS:
    return False
  epoch = record.get("epoch")
  return isinstance(epoch, (int, float)) and not isinstance(epoch, bool) and math.isfinite(epoch)


def _read_events(path: pathlib.Path, gaps: list[str]) -> list[dict[str, Any]] | None:
  """Returns the spike and collapse records of events.jsonl, or None when the file is absent.

  Lines that are not JSON objects with a known kind and an epoch are skipped and counted in
  `gaps`. The last line may be half-written while the run appends to it.
  """
  file = path / "events.jsonl"
  try:
    lines = file.read_text().splitlines()
  except FileNotFoundError:
    gaps.append("No events.jsonl: no spike or collapse detection results for this run.")
    return None
  events, skipped = [], 0
  for line in lines:
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except ValueError:
      record = None
    if _valid_event(record):
      events.append(record)
    else:
      skipped += 1
  if skipped:
    gaps.append(f"Skipped {skipped} unreadable line(s) of events.jsonl.")
  return events
