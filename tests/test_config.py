"""Tests for config files and validation, learning-rate schedules and command-line errors."""

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest
from absl import flags

from jaxgan import config_lib
from jaxgan import families
from jaxgan import optim
from jaxgan.base_configs import dcgan as dcgan_config
from jaxgan.errors import ConfigError

_REPO = Path(__file__).resolve().parents[1]


def _load_config(path: str, preset: str = "") -> ml_collections.ConfigDict:
  """Loads configs/<file>.py and calls its get_config, as `--config path:preset` does."""
  spec = importlib.util.spec_from_file_location(Path(path).stem, _REPO / path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset) if preset else module.get_config()


def _validate(config: ml_collections.ConfigDict) -> None:
  config_lib.validate_common(config)
  families.get(config.model.family).validate(config)


def _set_value(config: ml_collections.ConfigDict, key: str, value) -> None:
  *parents, name = key.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[name] = value


# Config files


def test_base_config_valid():
  _validate(dcgan_config.get_config())


@pytest.mark.parametrize("preset, image_size", [("", 32), ("tiny", 16), ("64", 64)])
def test_default_config_valid(preset, image_size):
  config = _load_config("configs/default.py", preset)

  _validate(config)

  assert config.data.image_size == image_size


def test_default_config_rejects_unknown_preset():
  with pytest.raises(ValueError, match="'nope'"):
    _load_config("configs/default.py", "nope")


@pytest.mark.parametrize("preset, image_size", [("", 128), ("64", 64)])
def test_w7_128_config_valid(preset, image_size, tmp_path):
  config = _load_config("configs/w7_128.py", preset)
  config.data.dir = str(tmp_path)

  _validate(config)

  assert config.data.image_size == image_size


def test_w7_128_config_needs_data_dir():
  config = _load_config("configs/w7_128.py")

  with pytest.raises(ConfigError, match="data.dir"):
    _validate(config)


@pytest.mark.parametrize("key, expected", [
    ("data.image_size", 128),
    ("data.batch_size", 32),
    ("train.num_epochs", 400),
    ("optim.optimizer", "adam"),
    ("optim.lr_g", 4e-4),
    ("optim.lr_d", 4e-5),
    ("optim.b1", 0.5),
    ("optim.b2", 0.999),
    ("optim.schedule_g", "constant"),
    ("optim.schedule_d", "constant"),
    ("optim.warmup_epochs", 0),
    ("optim.clip_grad_norm", 0),
    ("model.family", "dcgan"),
    ("model.arch", "w7"),
    ("model.width", 64),
    ("model.bn_epsilon", 5e-5),
    ("model.latent_dim", 100),
    ("model.latent_distribution", "normal"),
    ("loss.real_label_min", 0.9),
    ("loss.real_label_max", 1.0),
    ("loss.d_reduction", "sum"),
    ("data.source", "folder"),
    ("data.exclude_known_non_faces", True),
])
def test_w7_128_reference_value(key, expected):
  config = _load_config("configs/w7_128.py")

  assert config_lib.get(config, key) == expected


def test_w7_128_preset_64_changes_only_image_size():
  full = _load_config("configs/w7_128.py").to_dict()
  small = _load_config("configs/w7_128.py", "64").to_dict()

  assert small["data"].pop("image_size") == 64
  assert full["data"].pop("image_size") == 128
  assert small == full


# Invalid values

_INVALID_CASES = [
    # (key, value, the value as the message writes it after "key=")
    ("optim.lr_g", 0, "0"),
    ("optim.lr_g", -1, "-1"),
    ("optim.lr_d", float("nan"), "nan"),
    ("optim.b1", 1.0, "1.0"),
    ("optim.optimizer", "rmsprop", "'rmsprop'"),
    ("optim.schedule_g", "foo", "'foo'"),
    ("data.image_size", 60, "60"),
    ("data.batch_size", 0, "0"),
    ("data.batch_size", True, "True"),
    ("train.num_epochs", 0, "0"),
    ("data.source", "nope", "'nope'"),
    ("model.latent_distribution", "cauchy", "'cauchy'"),
    ("model.arch", "w9", "'w9'"),
    ("model.width", 0, "0"),
    ("loss.d_reduction", "max", "'max'"),
]


@pytest.mark.parametrize(
    "key, value, value_text", _INVALID_CASES,
    ids=[f"{key}={value!r}" for key, value, _ in _INVALID_CASES])
def test_validate_rejects_invalid_value(key, value, value_text):
  config = dcgan_config.get_config()
  _set_value(config, key, value)

  with pytest.raises(ConfigError) as error:
    _validate(config)

  assert key in str(error.value)
  assert f"{key}={value_text}" in str(error.value)


def test_validate_rejects_folder_without_dir():
  config = dcgan_config.get_config()
  config.data.source = "folder"
  config.data.dir = ""

  with pytest.raises(ConfigError) as error:
    _validate(config)

  assert "data.dir" in str(error.value)
  assert "'folder'" in str(error.value)


@pytest.mark.parametrize("source", ["generated", "tfds"])
def test_validate_rejects_dir_unused_by_source(source):
  config = dcgan_config.get_config()
  config.data.source = source
  config.data.dir = "/some/folder"

  with pytest.raises(ConfigError) as error:
    _validate(config)

  assert f"data.dir=/some/folder is set but data.source is '{source}'" in str(error.value)
  assert "--config.data.source=folder" in str(error.value)


def test_validate_rejects_data_b_dir_with_generated_source():
  config = config_lib.load_config_file(_REPO / "configs" / "cyclegan_face2simpsons.py", "tiny")
  config.data_b.dir = "/some/folder"

  with pytest.raises(ConfigError, match="data_b.dir=/some/folder is set but data_b.source"):
    families.validate_config(config)


def test_validate_rejects_label_min_above_max():
  config = dcgan_config.get_config()
  config.loss.real_label_min = 0.95
  config.loss.real_label_max = 0.92

  with pytest.raises(ConfigError) as error:
    _validate(config)

  assert "loss.real_label_min=0.95" in str(error.value)
  assert "loss.real_label_max=0.92" in str(error.value)


def test_families_get_rejects_unknown_family():
  with pytest.raises(ConfigError) as error:
    families.get("nope")

  assert "'nope'" in str(error.value)
  assert "dcgan" in str(error.value)


# Learning-rate schedules: 10 steps per epoch, 10 epochs (100 steps), peak 1e-3.

_PEAK = 1e-3

_SCHEDULE_CASES = [
    # (schedule, optim overrides, step, expected rate)
    ("constant", {}, 0, _PEAK),
    ("constant", {}, 99, _PEAK),
    ("step", {"step_decay_epochs": 2.0}, 19, _PEAK),
    ("step", {"step_decay_epochs": 2.0}, 20, _PEAK / 2),
    ("step", {"step_decay_epochs": 2.0}, 40, _PEAK / 4),
    ("step", {"step_decay_epochs": 2.0, "step_decay_factor": 0.1}, 20, _PEAK / 10),
    ("cosine", {}, 0, _PEAK),
    ("cosine", {}, 25, _PEAK * 0.5 * (1 + math.cos(math.pi / 4))),
    ("cosine", {}, 50, _PEAK / 2),
    ("cosine", {}, 100, 0.0),
    ("linear", {"decay_start_epoch": 6.0}, 0, _PEAK),
    ("linear", {"decay_start_epoch": 6.0}, 60, _PEAK),
    ("linear", {"decay_start_epoch": 6.0}, 80, _PEAK / 2),
    ("linear", {"decay_start_epoch": 6.0}, 100, 0.0),
    ("constant", {"warmup_epochs": 2.0}, 0, 0.0),
    ("constant", {"warmup_epochs": 2.0}, 10, _PEAK / 2),
    ("constant", {"warmup_epochs": 2.0}, 20, _PEAK),
    ("constant", {"warmup_epochs": 2.0}, 70, _PEAK),
    ("cosine", {"warmup_epochs": 2.0}, 20, _PEAK),
    ("cosine", {"warmup_epochs": 2.0}, 60, _PEAK / 2),
    ("cosine", {"warmup_epochs": 2.0}, 100, 0.0),
    # decay_start_epoch counts from the start of the run, warm-up included.
    ("linear", {"warmup_epochs": 2.0, "decay_start_epoch": 6.0}, 60, _PEAK),
    ("linear", {"warmup_epochs": 2.0, "decay_start_epoch": 6.0}, 80, _PEAK / 2),
    ("linear", {"warmup_epochs": 2.0, "decay_start_epoch": 6.0}, 100, 0.0),
]


@pytest.mark.parametrize("kind, overrides, step, expected", _SCHEDULE_CASES)
def test_make_schedule_rate(kind, overrides, step, expected):
  optim_config = dcgan_config.get_config().optim
  for name, value in overrides.items():
    optim_config[name] = value
  schedule = optim.make_schedule(optim_config, kind, _PEAK, steps_per_epoch=10, num_epochs=10)

  assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-10)


def test_make_schedule_rejects_unknown_kind():
  with pytest.raises(ValueError, match="'foo'"):
    optim.make_schedule(dcgan_config.get_config().optim, "foo", _PEAK, 10, 10)


# Command line


def _run_main(*args: str) -> subprocess.CompletedProcess:
  # Without cluster variables, JAX's cluster detection (for --distributed) finds no cluster.
  env = {name: value for name, value in os.environ.items()
         if not name.startswith(("SLURM_", "OMPI_")) and name != "KUBERNETES_SERVICE_HOST"}
  env["JAX_PLATFORMS"] = "cpu"
  return subprocess.run(
      [sys.executable, "-m", "jaxgan.main", *args], cwd=_REPO, env=env, capture_output=True,
      text=True, timeout=300)


def _error_lines(stderr: str) -> list[str]:
  """Returns the error lines: "Error: ..." from flag parsing, or absl's "E<date> ...] ..." log."""
  return [line for line in stderr.splitlines() if re.match(r"(Error: |E\d{4} .*\] )", line)]


def test_main_misspelled_override_exits_2(tmp_path):
  result = _run_main(
      "--config", "configs/default.py:tiny", "--workdir", str(tmp_path / "run"),
      "--config.optim.lr_gg=1")

  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert len(_error_lines(result.stderr)) == 1
  assert "lr_gg" in _error_lines(result.stderr)[0]


def test_main_invalid_lr_exits_2(tmp_path):
  result = _run_main(
      "--config", "configs/default.py:tiny", "--workdir", str(tmp_path / "run"),
      "--config.optim.lr_g=-1")

  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert len(_error_lines(result.stderr)) == 1
  assert "optim.lr_g" in _error_lines(result.stderr)[0]
  assert not (tmp_path / "run").exists()


def test_main_missing_workdir_exits_2():
  result = _run_main("--config", "configs/default.py:tiny")

  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert "--workdir" in result.stderr


def test_main_unknown_preset_exits_2(tmp_path):
  result = _run_main("--config", "configs/default.py:nope", "--workdir", str(tmp_path / "run"))

  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert "'nope'" in result.stderr
  assert _error_lines(result.stderr) == [
      "Error: Could not load the config file configs/default.py:nope: unknown preset 'nope' for "
      "configs/default.py; use 'tiny' or '64'"]


def test_main_wrong_type_override_names_the_fix(tmp_path):
  result = _run_main(
      "--config", "configs/default.py:tiny", "--workdir", str(tmp_path / "run"),
      "--config.train.num_epochs=abc")

  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert len(_error_lines(result.stderr)) == 1
  assert "num_epochs=abc" in _error_lines(result.stderr)[0]
  assert "jaxgan/base_configs/dcgan.py" in _error_lines(result.stderr)[0]
  assert "--helpfull" not in result.stderr


@pytest.mark.parametrize("flags, expected", [
    (("--num_processes", "2", "--process_id", "2"), "--process_id=2"),
    (("--coordinator_address", "localhost"), "--coordinator_address=localhost"),
    (("--distributed",), "--coordinator_address host:port"),
])
def test_main_invalid_process_flags_exit_2(tmp_path, flags, expected):
  result = _run_main(
      "--config", "configs/default.py:tiny", "--workdir", str(tmp_path / "run"), *flags)

  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert len(_error_lines(result.stderr)) == 1
  assert expected in _error_lines(result.stderr)[0]
  assert not (tmp_path / "run").exists()


def _help_without_program(output: str, program: str) -> str:
  """Returns --help output with the program path that absl names the flags section after removed."""
  return output.replace(program, "<program>")


def test_console_script_help_lists_flags(tmp_path):
  # The same wrapper that pip writes for the `jaxgan = "jaxgan.main:run"` console script.
  script = tmp_path / "jaxgan"
  script.write_text("import sys\nfrom jaxgan.main import run\n"
                    "if __name__ == '__main__':\n  sys.exit(run())\n")
  env = {**os.environ, "PYTHONPATH": str(_REPO)}
  module_help = subprocess.run(
      [sys.executable, "-m", "jaxgan.main", "--help"], cwd=_REPO, env=env, capture_output=True,
      text=True, timeout=120)
  script_help = subprocess.run(
      [sys.executable, str(script), "--help"], cwd=_REPO, env=env, capture_output=True,
      text=True, timeout=120)

  assert "--workdir" in script_help.stdout + script_help.stderr
  assert "allow_config_change" in script_help.stdout + script_help.stderr
  assert (_help_without_program(script_help.stdout + script_help.stderr, str(script))
          == _help_without_program(module_help.stdout + module_help.stderr,
                                   str(_REPO / "jaxgan" / "main.py")))


def test_allow_config_change_help_matches_checks():
  from jaxgan import main  # pylint: disable=g-import-not-at-top,unused-import  # Defines the flag.
  from jaxgan import train  # pylint: disable=g-import-not-at-top

  help_text = " ".join(flags.FLAGS["allow_config_change"].help.split())

  for key in train.STRUCTURAL_KEYS + train.SHAPE_NEUTRAL_KEYS:
    if key in train.SHAPE_KEYS:
      continue
    assert key.replace("data_b.", "data.") in help_text, key
  assert "data_b" in help_text
  assert "rejected even with this flag" in help_text
