"""Evaluation results with the settings that produced them, and their comparison.

A result file `<eval folder>/<name>.json` contains {"metric", "value", "settings", "details"}.
Two results are comparable only when every setting in COMPARED_SETTINGS is equal; `compare`
raises an error that names each difference otherwise. The workdir, checkpoint step and epoch
may differ, because comparing checkpoints and runs is the point.
"""

import json
import os
from typing import Any

from jaxgan.errors import JaxganError

# Settings that change what a number measures. Every result records them.
COMPARED_SETTINGS = (
    "metric",
    "num_real",
    "num_fake",
    "resolution",
    "resize_method",
    "real_preprocessing",
    "fake_quantization",
    "batchnorm_mode",
    "ema",
    "truncation",
    "weights_sha256",
    "seed",
    "real_fingerprint",
    "metric_parameters",
)
# Recorded for reference; they may differ between compared results.
RECORDED_SETTINGS = ("workdir", "step", "epoch", "checkpoint_kind", "real_source", "family",
                     "arch", "weights")


class SettingsMismatchError(JaxganError):
  """Two evaluation results were computed with different settings."""


def make_record(metric: str, value: float, settings: dict[str, Any],
                details: dict[str, Any] | None = None) -> dict[str, Any]:
  """Returns a result record; raises ValueError if `settings` lacks a compared setting."""
  missing = [key for key in COMPARED_SETTINGS if key != "metric" and key not in settings]
  if missing:
    raise ValueError(f"result settings lack {', '.join(missing)}")
  return {"metric": metric, "value": value, "settings": {**settings, "metric": metric},
          "details": details or {}}


def write(record: dict[str, Any], directory: str, name: str) -> str:
  """Writes `record` to `directory/name.json` atomically; returns the path."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, f"{name}.json")
  temporary = path + ".tmp"
  with open(temporary, "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  os.replace(temporary, path)
  return path


def read(path: str) -> dict[str, Any]:
  """Reads a result file; raises SettingsMismatchError's parent JaxganError for a bad file."""
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, json.JSONDecodeError) as error:
    raise JaxganError(f"Could not read the evaluation result {path}: {error}.") from error
  if not isinstance(record, dict) or "settings" not in record or "value" not in record:
    raise JaxganError(
        f"{path} is not an evaluation result: it lacks 'value' or 'settings'. Pass a file that "
        "python -m jaxgan.evaluate wrote.")
  return record


def settings_differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
  """Lists "key: first -> second" for each compared setting that differs."""
  differences = []
  for key in COMPARED_SETTINGS:
    old, new = first["settings"].get(key), second["settings"].get(key)
    if old != new:
      differences.append(f"{key}: {old!r} vs {new!r}")
  return differences


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
  """Returns both values and their difference (second - first) for two comparable results.

  Raises:
    SettingsMismatchError: naming each setting that differs.
  """
  differences = settings_differences(first, second)
  if differences:
    raise SettingsMismatchError(
        "The two results were computed with different settings, so their values are not "
        f"comparable: {'; '.join(differences)}. Evaluate both with the same settings.")
  return {
      "metric": first["metric"],
      "first": {"value": first["value"], "step": first["settings"].get("step"),
                "workdir": first["settings"].get("workdir")},
      "second": {"value": second["value"], "step": second["settings"].get("step"),
                 "workdir": second["settings"].get("workdir")},
      "difference": second["value"] - first["value"],
  }
