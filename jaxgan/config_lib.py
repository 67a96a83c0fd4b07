"""Validation of config values, before any data is read or any array is allocated.

Every check raises `ConfigError` with the key, the value, the allowed values and how to set it, so
that `jaxgan.main` can end the run with one clear line and exit status 2.
"""

import importlib.util
import math
import os
from typing import Any, Iterable

import ml_collections

from jaxgan.errors import ConfigError


def load_config_file(path: str | os.PathLike, preset: str = "") -> ml_collections.ConfigDict:
  """Runs the config file at `path` and returns its get_config(preset), or get_config() without a
  preset. Experiment configs use it to start from another config file."""
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset) if preset else module.get_config()


def get(config: ml_collections.ConfigDict, key: str) -> Any:
  """Returns the value at a dotted key such as "optim.lr_g"; a missing key is a ConfigError."""
  value = config
  for part in key.split("."):
    try:
      value = value[part]
    except (KeyError, AttributeError, TypeError):
      raise ConfigError(
          f"Missing config key {key!r}. Start the config from a base config in "
          "jaxgan/base_configs/ so that every key exists.") from None
  return value


def flatten(config: ml_collections.ConfigDict | dict[str, Any]) -> dict[str, Any]:
  """Returns the leaves of a nested config (ConfigDict or plain dict) keyed by dotted paths."""
  flat = {}

  def visit(prefix, node):
    for key, value in node.items():
      name = f"{prefix}{key}"
      if isinstance(value, (ml_collections.ConfigDict, dict)):
        visit(f"{name}.", value)
      else:
        flat[name] = value

  visit("", config)
  return flat


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
  return ConfigError(
      f"Invalid config value {key}={value!r}: {allowed}. Change it in the config file or pass "
      f"--config.{key}=<value>.")


def _describe_range(low, high, low_inclusive: bool, high_inclusive: bool) -> str:
  """Returns "in [a, b)", ">= a" or "< b" for a range with one or two bounds."""
  if low is not None and high is not None:
    left = "[" if low_inclusive else "("
    right = "]" if high_inclusive else ")"
    return f"in {left}{low}, {high}{right}"
  if low is not None:
    operator = ">=" if low_inclusive else ">"
    return f"{operator} {low}"
  operator = "<=" if high_inclusive else "<"
  return f"{operator} {high}"


def check_number(
    config: ml_collections.ConfigDict,
    key: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> None:
  """Checks that `key` is a finite number (an int if `integer`) inside the given range."""
  value = get(config, key)
  kind = "an integer" if integer else "a number"
  is_number = isinstance(value, int) if integer else isinstance(value, (int, float))
  if isinstance(value, bool) or not is_number or not math.isfinite(value):
    raise _fail(key, value, f"must be {kind}")
  low_ok = low is None or (value >= low if low_inclusive else value > low)
  high_ok = high is None or (value <= high if high_inclusive else value < high)
  if not (low_ok and high_ok):
    allowed = _describe_range(low, high, low_inclusive, high_inclusive)
    raise _fail(key, value, f"must be {kind} {allowed}")


def check_choice(config: ml_collections.ConfigDict, key: str, choices: Iterable[str]) -> None:
  """Checks that `key` is one of `choices`."""
  value = get(config, key)
  choices = tuple(choices)
  if value not in choices:
    raise _fail(key, value, f"must be one of {', '.join(repr(c) for c in choices)}")


def validate_common(config: ml_collections.ConfigDict) -> None:
  """Checks the keys every model family shares: seed, data and loop settings.

  The GAN optimizer keys are checked too when the config has optim.lr_g.
  """
  check_number(config, "seed", low=0, high=2**31 - 1, integer=True)

  check_choice(config, "data.source", ("folder", "tfds", "generated"))
  if config.data.source == "folder" and not config.data.dir:
    raise ConfigError(
        "Missing config value data.dir: the 'folder' source needs a folder of PNG or JPEG images. "
        "Pass --config.data.dir=<folder>, or --config.data.source=generated to train on the "
        "built-in generated faces.")
  check_source_reads_dir(config, "data")
  check_number(config, "data.image_size", low=8, high=4096, integer=True)
  check_number(config, "data.batch_size", low=1, integer=True)
  check_number(config, "data.cache_max_gib", low=0)
  check_number(config, "data.num_generated", low=1, integer=True)
  check_number(config, "data.num_threads", low=0, integer=True)
  check_number(config, "data.prefetch_batches", low=1, integer=True)

  check_number(config, "train.num_epochs", low=1, integer=True)
  for key in ("train.log_every_steps", "train.sample_every_epochs",
              "train.checkpoint_every_epochs", "train.keep_checkpoints"):
    check_number(config, key, low=1, integer=True)
  check_choice(config, "train.on_nonfinite", ("stop", "rollback"))
  check_number(config, "train.rollback_lr_factor", low=0, high=1, low_inclusive=False,
               high_inclusive=False)
  check_number(config, "train.max_rollbacks", low=0, integer=True)
  check_number(config, "train.ring_epochs", low=0, integer=True)
  # Families without the spike monitor keys (SDPC has no monitor section, CycleGAN its own)
  # train without the spike and collapse monitors.
  if "monitor" in config and "spike_threshold" in config.monitor:
    validate_monitor(config)

  if "lr_g" in config.optim:
    validate_gan_optimizers(config)

  from jaxgan.evaluation import periodic  # pylint: disable=g-import-not-at-top

  periodic.validate(config)


def check_source_reads_dir(config: ml_collections.ConfigDict, data_key: str) -> None:
  """Raises ConfigError when `<data_key>.dir` is set for a source that ignores it.

  Only the "folder" source reads the dir key: "generated" draws faces and "tfds" reads
  tfds_data_dir, so a dir set with either would train silently on other images.
  """
  data = config[data_key]
  if data.source != "folder" and data.get("dir"):
    raise ConfigError(
        f"{data_key}.dir={data.dir} is set but {data_key}.source is {data.source!r}, which "
        f"ignores it; pass --config.{data_key}.source=folder to train on that folder, or drop "
        f"{data_key}.dir.")


def validate_gan_optimizers(config: ml_collections.ConfigDict) -> None:
  """Checks the optim.* keys of families with a generator and a discriminator optimizer."""
  check_choice(config, "optim.optimizer", ("adam", "sgd"))
  for key in ("optim.lr_g", "optim.lr_d"):
    check_number(config, key, low=0, low_inclusive=False, high=10)
  for key in ("optim.b1", "optim.b2", "optim.momentum"):
    check_number(config, key, low=0, high=1, high_inclusive=False)
  check_number(config, "optim.eps", low=0, low_inclusive=False)
  schedules = ("constant", "step", "cosine", "linear")
  check_choice(config, "optim.schedule_g", schedules)
  check_choice(config, "optim.schedule_d", schedules)
  check_number(config, "optim.warmup_epochs", low=0)
  check_number(config, "optim.step_decay_epochs", low=0, low_inclusive=False)
  check_number(config, "optim.step_decay_factor", low=0, low_inclusive=False, high=1)
  check_number(config, "optim.decay_start_epoch", low=0)
  check_number(config, "optim.clip_grad_norm", low=0)


def validate_monitor(config: ml_collections.ConfigDict) -> None:
  """Checks the monitor.* keys of the loss-spike and mode-collapse monitors."""
  check_number(config, "monitor.spike_threshold", low=0, low_inclusive=False)
  check_number(config, "monitor.spike_window", low=2, integer=True)
  check_number(config, "monitor.spike_min_history", low=1, integer=True)
  if config.monitor.spike_min_history > config.monitor.spike_window:
    raise _fail("monitor.spike_min_history", config.monitor.spike_min_history,
                f"must be at most monitor.spike_window={config.monitor.spike_window}, because "
                "the detector keeps only that many previous values")
  check_number(config, "monitor.spike_mad_floor", low=0)
  check_number(config, "monitor.window_steps", low=0, integer=True)
  check_number(config, "monitor.collapse_ratio", low=0)
  check_number(config, "monitor.collapse_num_real", low=2, integer=True)
