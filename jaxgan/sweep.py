"""Hyper-parameter sweeps: one jaxgan.main run per grid point, then one report over all of them.

    python -m jaxgan.sweep --config configs/w7_128threshold.py \
        --set optim.lr_d=4e-5,1e-4 --set loss.g_threshold=0.25,0.5,0.75 \
        --root runs/sweep [--zip] [--parallel N] [--devices 0,1,2,3] [--config.train.num_epochs=200]

The grid is the product of the --set value lists (6 points above), or with --zip their pairing
(all lists of one length). Each point trains in root/<name>, with a name built from its values,
such as lr_d-4e-05__g_threshold-0.25, and logs to root/logs/<name>.log. A point whose summary.json
has all its planned epochs done is skipped. Any other point runs the usual jaxgan.main command,
which resumes from its newest checkpoint. The sweep ends with `python -m jaxgan.report` over every point
that has started, written to root/report/.

Values are parsed with the types of the config's fields, and every point's config is validated
before the first run starts, so a misspelled key or a bad value costs nothing. Further
--config.<key>=<value> arguments are passed to every point; they do not change the point names.

Devices: with --parallel N, N points train at once, each in its own `python -m jaxgan.main`
process. --devices lists the GPU ids to split between them through CUDA_VISIBLE_DEVICES: worker i
gets ids i, i+N, i+2N, ... of the list, so 4 ids and --parallel 4 run one process per GPU. With
fewer ids than workers, workers share GPUs round-robin and each process allocates GPU memory on
demand (XLA_PYTHON_CLIENT_PREALLOCATE=false) instead of taking most of it at start. Without
--devices every process uses every device that the sweep can use, which suits CPU runs.

Exit status: 0 when every point has finished, 1 when a point failed or the sweep was stopped
(SIGINT or SIGTERM, which are passed on to the running points so that they save and stop), 2 for
bad input.
"""

import argparse
import concurrent.futures
import dataclasses
import hashlib
import itertools
import json
import math
import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import ml_collections
from absl import logging

from jaxgan import cli
from jaxgan import config_lib
from jaxgan.errors import ConfigError

# Maximum length of a point name. Longer names are cut and end with a hash of the full values.
MAX_NAME_LENGTH = 120
_TRUE_TEXTS = ("true", "1", "yes")
_FALSE_TEXTS = ("false", "0", "no")
_OVERRIDE_PATTERN = re.compile(r"^--config\.([A-Za-z0-9_.]+)=(.*)$", re.DOTALL)


@dataclasses.dataclass
class Point:
  """One grid point: its values (dotted key -> parsed value), name and validated config."""

  values: dict[str, Any]
  name: str
  config: ml_collections.ConfigDict


def parse_value(key: str, text: str, current: Any) -> Any:
  """Parses `text` as a value of the config field `key`, whose current value is `current`.

  Raises:
    ConfigError: if the text does not parse as the field's type, or the field is not a bool, int,
      float or str.
  """
  def invalid(expected: str) -> ConfigError:
    return ConfigError(
        f"Invalid value {text!r} for config key {key}: expected {expected}, because the config "
        f"sets {key}={current!r}.")

  if isinstance(current, bool):
    lowered = text.strip().lower()
    if lowered in _TRUE_TEXTS:
      return True
    if lowered in _FALSE_TEXTS:
      return False
    raise invalid("true or false")
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise invalid("an integer") from None
  if isinstance(current, float):
    try:
      value = float(text)
    except ValueError:
      raise invalid("a number") from None
    if not math.isfinite(value):
      raise invalid("a finite number")
    return value
  if isinstance(current, str):
    return text
  raise ConfigError(
      f"Cannot set config key {key} from the command line: its value {current!r} is a "
      f"{type(current).__name__}, and only bool, int, float and str keys can be swept.")


def _field(config: ml_collections.ConfigDict, key: str, argument: str) -> Any:
  """Returns the current value of `key`; an unknown key or a whole section is a ConfigError."""
  try:
    value = config_lib.get(config, key)
  except ConfigError:
    raise ConfigError(
        f"Unknown config key {key!r} in {argument}. Every key of a model family is listed, "
        "with a comment, in its base config in jaxgan/base_configs/.") from None
  if isinstance(value, (ml_collections.ConfigDict, dict)):
    raise ConfigError(
        f"Config key {key!r} in {argument} is a section, not a value. Name a key inside it, "
        f"such as {key}.{next(iter(value.keys()), 'x')}.")
  return value


def parse_set(argument: str, config: ml_collections.ConfigDict) -> tuple[str, list[Any]]:
  """Parses one --set "key=v1,v2,..." into (key, parsed values)."""
  key, separator, text = argument.partition("=")
  key = key.strip()
  if not separator or not key or not text.strip():
    raise ConfigError(
        f"Invalid --set {argument!r}: expected KEY=VALUE[,VALUE...], for example "
        "--set optim.lr_d=4e-5,1e-4.")
  current = _field(config, key, f"--set {argument}")
  values = [parse_value(key, part.strip(), current) for part in text.split(",")]
  if len(set(map(repr, values))) != len(values):
    raise ConfigError(f"Repeated value in --set {argument}: each value of a key must differ.")
  return key, values


def parse_override(argument: str, config: ml_collections.ConfigDict) -> tuple[str, Any]:
  """Parses one extra "--config.key=value" argument into (key, parsed value)."""
  match = _OVERRIDE_PATTERN.match(argument)
  if not match:
    raise ConfigError(
        f"Unexpected argument {argument!r}. Besides the sweep's own options, only config "
        "overrides --config.<key>=<value> are accepted.")
  key, text = match.groups()
  return key, parse_value(key, text, _field(config, key, argument))


def grid(sets: Sequence[tuple[str, list[Any]]], zip_values: bool) -> list[dict[str, Any]]:
  """Returns the points of the grid as {key: value} dicts, in a stable order.

  The product varies the last key fastest. With `zip_values` the i-th point takes the i-th value
  of every key, so all lists must have the same length.
  """
  keys = [key for key, _ in sets]
  if len(set(keys)) != len(keys):
    raise ConfigError(f"A key is given to --set more than once: {', '.join(keys)}. Give each "
                      "key once, with all its values separated by commas.")
  lists = [values for _, values in sets]
  if zip_values:
    lengths = {len(values) for values in lists}
    if len(lengths) > 1:
      counts = ", ".join(f"{key}: {len(values)}" for key, values in sets)
      raise ConfigError(
          f"--zip pairs the i-th values of every --set, so each needs the same number of values "
          f"(got {counts}). Give equal-length lists, or drop --zip for the full product.")
    combinations = list(zip(*lists))
  else:
    combinations = list(itertools.product(*lists))
  return [dict(zip(keys, combination)) for combination in combinations]


def _value_text(value: Any) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, float):
    # "g" keeps 4e-05 and 0.25 short; "e+06" loses its "+" to stay within the safe characters.
    return format(value, "g").replace("e+", "e")
  return str(value)


def _safe(text: str) -> str:
  """Keeps only the POSIX portable file-name characters [A-Za-z0-9._-], mapping others to "_"."""
  return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def point_names(points: Sequence[dict[str, Any]]) -> list[str]:
  """Names each point from its values, for example lr_d-4e-05__g_threshold-0.25.

  A key appears by its last part (lr_d) unless two swept keys share it, then in full. Names use
  only [A-Za-z0-9._-], depend only on the keys and values (so they are the same in every
  sweep), and get a hash of the exact values appended when cutting to MAX_NAME_LENGTH or
  replacing characters would make two names equal.
  """
  if not points:
    return []
  keys = list(points[0])
  leaves = [key.rsplit(".", 1)[-1] for key in keys]
  labels = {key: leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(keys, leaves)}
  names = []
  for values in points:
    name = "__".join(_safe(f"{labels[key]}-{_value_text(value)}") for key, value in values.items())
    names.append(name or "default")

  def with_hash(name: str, values: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=repr).encode()).hexdigest()
    return f"{name[:MAX_NAME_LENGTH - 9]}_{digest[:8]}"

  counts = {name: names.count(name) for name in names}
  return [with_hash(name, values) if counts[name] > 1 or len(name) > MAX_NAME_LENGTH else name
          for name, values in zip(names, points)]


def load_base_config(config_argument: str) -> ml_collections.ConfigDict:
  """Loads "file.py" or "file.py:preset" as jaxgan.main does."""
  path, _, preset = config_argument.partition(":")
  if not os.path.isfile(path):
    raise ConfigError(
        f"Config file not found: {path} (from --config={config_argument}). Pass the path of a "
        "Python file with a get_config() function, for example configs/default.py.")
  try:
    return config_lib.load_config_file(path, preset)
  except Exception as error:  # pylint: disable=broad-exception-caught
    # The config file is user code: any error in it is reported as a config error.
    raise ConfigError(f"Could not load the config file {config_argument}: {error}") from None


def make_points(
    base: ml_collections.ConfigDict,
    set_arguments: Sequence[str],
    override_arguments: Sequence[str],
    zip_values: bool,
) -> list[Point]:
  """Parses the arguments and returns every point with its validated config.

  Raises:
    ConfigError: for an unknown key, a value that does not parse, or a point whose config the
      model family rejects, before anything runs.
  """
  if not set_arguments:
    raise ConfigError("Nothing to sweep: pass at least one --set KEY=VALUE[,VALUE...].")
  sets = [parse_set(argument, base) for argument in set_arguments]
  overrides = dict(parse_override(argument, base) for argument in override_arguments)
  swept_and_overridden = sorted(set(overrides) & {key for key, _ in sets})
  if swept_and_overridden:
    raise ConfigError(
        f"Config key(s) {', '.join(swept_and_overridden)} given both to --set and as "
        "--config.<key>=<value>. Give each key one way.")

  value_dicts = grid(sets, zip_values)
  # Imported after the cheap checks, because validating a BigGAN or SDPC point imports JAX.
  from jaxgan import families  # pylint: disable=g-import-not-at-top

  points = []
  for values, name in zip(value_dicts, point_names(value_dicts)):
    config = ml_collections.ConfigDict(base.to_dict())
    for key, value in {**overrides, **values}.items():
      section, _, leaf = key.rpartition(".")
      (config_lib.get(config, section) if section else config)[leaf] = value
    try:
      families.validate_config(config)
    except ConfigError as error:
      raise ConfigError(f"Sweep point {name} is invalid: {error}") from None
    points.append(Point(values=values, name=name, config=config))
  return points


def _command_value(value: Any) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  return repr(value) if isinstance(value, float) else str(value)


def point_command(config_argument: str, workdir: pathlib.Path, point: Point,
                  override_arguments: Sequence[str]) -> list[str]:
  """Returns the jaxgan.main command line that trains (or resumes) `point` in `workdir`."""
  command = [sys.executable, "-m", "jaxgan.main", f"--config={config_argument}",
             f"--workdir={workdir}"]
  command += [f"--config.{key}={_command_value(value)}" for key, value in point.values.items()]
  return command + list(override_arguments)


def epochs_done(workdir: pathlib.Path) -> int:
  """Returns summary.json's epochs_done, or 0 when the run has not finished an epoch."""
  try:
    summary = json.loads((workdir / "summary.json").read_text())
    return int(summary.get("epochs_done", 0))
  except FileNotFoundError:
    return 0
  except (OSError, ValueError, TypeError, AttributeError) as error:
    logging.warning("Could not read %s/summary.json, so the point runs again: %s", workdir, error)
    return 0


def device_slots(parallel: int, devices: Sequence[str]) -> list[dict[str, str]]:
  """Returns the environment additions of each of the `parallel` workers (see the module doc)."""
  if not devices:
    return [{} for _ in range(parallel)]
  if len(devices) >= parallel:
    return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[i::parallel])} for i in range(parallel)]
  return [{"CUDA_VISIBLE_DEVICES": devices[i % len(devices)],
           "XLA_PYTHON_CLIENT_PREALLOCATE": "false"} for i in range(parallel)]


class Sweep:
  """Runs the points in worker threads, each of which waits on one jaxgan.main process."""

  def __init__(self, root: pathlib.Path, config_argument: str, override_arguments: Sequence[str],
               slots: list[dict[str, str]]):
    self.root = root
    self.config_argument = config_argument
    self.override_arguments = list(override_arguments)
    self.free_slots: queue.Queue = queue.Queue()
    for slot in slots:
      self.free_slots.put(slot)
    self.stop = threading.Event()
    self.processes: set[subprocess.Popen] = set()
    self.lock = threading.Lock()

  def request_stop(self, signum, frame) -> None:
    del frame
    if not self.stop.is_set():
      logging.warning("Received %s: starting no more points and asking the running ones to save "
                      "and stop.", signal.Signals(signum).name)
    self.stop.set()
    with self.lock:
      for process in self.processes:
        if process.poll() is None:
          process.send_signal(signal.SIGTERM)

  def run_point(self, index: int, total: int, point: Point) -> str:
    """Trains one point unless it has finished; returns "finished", "skipped", "failed",
    "stopped" or "not started"."""
    workdir = self.root / point.name
    planned = point.config.train.num_epochs
    done = epochs_done(workdir)
    prefix = f"[{index}/{total}] {point.name}"
    if done >= planned:
      logging.info("%s: skipped, all %d epochs done in %s", prefix, planned, workdir)
      return "skipped"
    if self.stop.is_set():
      return "not started"

    slot = self.free_slots.get()
    try:
      log_path = self.root / "logs" / f"{point.name}.log"
      log_path.parent.mkdir(parents=True, exist_ok=True)
      command = point_command(self.config_argument, workdir, point, self.override_arguments)
      start = "resuming after epoch %d of %d" % (done, planned) if done else "starting"
      devices = f" on devices {slot['CUDA_VISIBLE_DEVICES']}" if slot else ""
      logging.info("%s: %s%s; log in %s", prefix, start, devices, log_path)
      started = time.monotonic()
      with open(log_path, "a") as log_file:
        log_file.write(f"\n$ {' '.join(command)}\n")
        log_file.flush()
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                   env={**os.environ, **slot})
        with self.lock:
          self.processes.add(process)
        returncode = process.wait()
        with self.lock:
          self.processes.discard(process)
    finally:
      self.free_slots.put(slot)

    seconds = time.monotonic() - started
    done = epochs_done(workdir)
    if returncode == 0 and done >= planned:
      logging.info("%s: finished %d epochs in %.0f s", prefix, planned, seconds)
      return "finished"
    if self.stop.is_set():
      logging.warning("%s: stopped with exit status %d after %.0f s, %d of %d epochs done; the "
                      "same command resumes it", prefix, returncode, seconds, done, planned)
      return "stopped"
    logging.error("%s: failed with exit status %d after %.0f s, %d of %d epochs done; see %s",
                  prefix, returncode, seconds, done, planned, log_path)
    return "failed"


def run_sweep(
    points: Sequence[Point],
    root: pathlib.Path,
    config_argument: str,
    override_arguments: Sequence[str],
    parallel: int = 1,
    devices: Sequence[str] = (),
) -> dict[str, str]:
  """Runs every point (skipping finished ones) and writes the report; returns name -> outcome."""
  from jaxgan import report  # pylint: disable=g-import-not-at-top

  root.mkdir(parents=True, exist_ok=True)
  sweep = Sweep(root, config_argument, override_arguments, device_slots(parallel, devices))
  previous = {signum: signal.signal(signum, sweep.request_stop)
              for signum in (signal.SIGINT, signal.SIGTERM)}
  logging.info("Sweep of %d point(s) in %s, %d at a time", len(points), root, parallel)
  try:
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as executor:
      futures = [executor.submit(sweep.run_point, index + 1, len(points), point)
                 for index, point in enumerate(points)]
      outcomes = {point.name: future.result() for point, future in zip(points, futures)}
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)

  started = [root / point.name for point in points if (root / point.name / "config.json").is_file()]
  if started:
    html_path = report.build_report(started, root / "report", title=f"Sweep {root.name}")
    logging.info("Wrote the report of %d point(s) to %s", len(started), html_path)
  else:
    logging.warning("No point has started, so no report was written.")
  return outcomes


def make_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog="python -m jaxgan.sweep", allow_abbrev=False,
      description="Train one jaxgan run per point of a hyper-parameter grid, then compare them. "
                  "Other arguments of the form --config.<key>=<value> apply to every point.")
  parser.add_argument("--config", required=True,
                      help="config file, optionally with a preset, as for jaxgan.main")
  parser.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=V1,V2",
                      help="a config key and its comma-separated values; repeat for more keys")
  parser.add_argument("--zip", action="store_true",
                      help="pair the i-th values of every --set instead of taking the product")
  parser.add_argument("--root", required=True, help="folder of the point workdirs and the report")
  parser.add_argument("--parallel", type=int, default=1,
                      help="points trained at once, each in its own process (default 1)")
  parser.add_argument("--devices", default="",
                      help="comma-separated GPU ids split between the parallel workers through "
                           "CUDA_VISIBLE_DEVICES (default: every worker sees every device)")
  parser.add_argument("--dry_run", action="store_true",
                      help="print each point's command and state without training")
  return parser


def main(arguments: argparse.Namespace) -> None:
  if arguments.parallel < 1:
    raise ConfigError(f"Invalid --parallel {arguments.parallel}: pass 1 or more workers.")
  devices = [d.strip() for d in arguments.devices.split(",") if d.strip()]
  root = pathlib.Path(arguments.root).absolute()
  base = load_base_config(arguments.config)
  points = make_points(base, arguments.sets, arguments.overrides, arguments.zip)

  if arguments.dry_run:
    for point in points:
      done = epochs_done(root / point.name)
      print(f"{point.name}: {done} of {point.config.train.num_epochs} epochs done")
      print("  " + " ".join(point_command(arguments.config, root / point.name, point,
                                           arguments.overrides)))
    return

  outcomes = run_sweep(points, root, arguments.config, arguments.overrides, arguments.parallel,
                       devices)
  for name, outcome in outcomes.items():
    print(f"{outcome:12s} {root / name}")
  if any(outcome not in ("finished", "skipped") for outcome in outcomes.values()):
    sys.exit(1)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
  """Parses the sweep's options; the remaining --config.<key>=<value> go to `overrides`."""
  arguments, overrides = make_parser().parse_known_args(argv)
  arguments.overrides = overrides
  return arguments


if __name__ == "__main__":
  cli.run(main, parse_arguments)
