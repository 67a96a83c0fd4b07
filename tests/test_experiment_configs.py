"""Tests that the reference experiment configs load, validate and hold their key values."""

from pathlib import Path

import pytest

from jaxgan import config_lib
from jaxgan import families
from jaxgan.base_configs import dcgan as dcgan_config
from jaxgan.errors import ConfigError

_REPO = Path(__file__).resolve().parents[1]

# (config file, preset) -> values that the experiment sets.
_EXPECTED = {
    ("w7_128lr", ""): {
        "optim.lr_g": 1e-4, "optim.lr_d": 1e-5, "train.num_epochs": 1000,
        "data.image_size": 128, "data.batch_size": 32, "model.arch": "w7",
    },
    ("w7_128bn", ""): {
        "model.bn_epsilon": 0.1, "train.num_epochs": 360, "optim.lr_g": 4e-4,
        "optim.lr_d": 4e-5, "data.image_size": 128,
    },
    ("w7_128threshold", ""): {"loss.g_threshold": 0.5, "train.num_epochs": 1000},
    ("w7_128threshold", "0.25"): {"loss.g_threshold": 0.25, "train.num_epochs": 1000},
    ("w7_128threshold", "0.50"): {"loss.g_threshold": 0.5, "train.num_epochs": 1000},
    ("w7_128threshold", "0.75"): {"loss.g_threshold": 0.75, "train.num_epochs": 1000},
    ("reproduct", ""): {
        "model.arch": "reproduct", "model.init": "truncated_normal",
        "model.latent_distribution": "uniform", "data.image_size": 64, "data.batch_size": 64,
        "data.random_flip": True, "loss.real_noise_max": 0.1, "loss.d_reduction": "mean",
        "train.num_epochs": 300, "optim.lr_g": 4e-4, "optim.lr_d": 4e-5,
        "loss.real_label_min": 0.9, "loss.real_label_max": 1.0,
    },
    ("reproduct64", ""): {
        "model.arch": "reproduct4", "model.init": "truncated_normal",
        "model.latent_distribution": "uniform", "data.image_size": 64, "data.batch_size": 64,
        "data.random_flip": True, "loss.real_noise_max": 0.1, "loss.d_reduction": "mean",
        "train.num_epochs": 300,
    },
    ("reproduct128", ""): {
        "model.arch": "reproduct4", "model.init": "truncated_normal", "data.image_size": 128,
        "data.batch_size": 64, "train.num_epochs": 500, "loss.d_reduction": "mean",
        "data.random_flip": True, "loss.real_noise_max": 0.1,
    },
    ("w7_hrf_noise", ""): {
        "model.arch": "w7", "data.image_size": 64, "data.batch_size": 64,
        "data.random_flip": True, "loss.real_noise_max": 0.1, "train.num_epochs": 300,
        "model.init": "glorot_normal", "loss.d_reduction": "sum",
    },
    ("w7_sgd", ""): {
        "model.arch": "w7", "data.image_size": 64, "data.batch_size": 64,
        "optim.optimizer": "sgd", "optim.momentum": 0.9, "train.num_epochs": 400,
        "optim.lr_g": 4e-4, "optim.lr_d": 4e-5,
    },
}

_CASES = sorted(_EXPECTED)
_IDS = [f"{name}:{preset}" if preset else name for name, preset in _CASES]

# Keys that every experiment takes unchanged from the base config, except those in its _EXPECTED
# entry.
_BASE_KEYS = ("loss.g_threshold", "loss.real_noise_max", "data.random_flip", "model.init")


def _load(name: str, preset: str):
  return config_lib.load_config_file(_REPO / "configs" / f"{name}.py", preset)


def _validate(config) -> None:
  config_lib.validate_common(config)
  families.get(config.model.family).validate(config)


@pytest.mark.parametrize("name, preset", _CASES, ids=_IDS)
def test_experiment_config_valid(name, preset, tmp_path):
  config = _load(name, preset)
  config.data.dir = str(tmp_path)

  _validate(config)


@pytest.mark.parametrize("name, preset", _CASES, ids=_IDS)
def test_experiment_config_values(name, preset):
  config = _load(name, preset)
  expected = _EXPECTED[(name, preset)]
  base = dcgan_config.get_config()

  for key, value in expected.items():
    assert config_lib.get(config, key) == value, key
  for key in _BASE_KEYS:
    if key not in expected:
      assert config_lib.get(config, key) == config_lib.get(base, key), key


@pytest.mark.parametrize("name, preset", _CASES, ids=_IDS)
def test_experiment_config_reads_faces_folder(name, preset):
  config = _load(name, preset)

  assert config.data.source == "folder"
  assert config.data.exclude_known_non_faces is True
  with pytest.raises(ConfigError, match="data.dir"):
    _validate(config)


def test_threshold_config_rejects_unknown_preset():
  with pytest.raises(ValueError, match="'0.3'"):
    _load("w7_128threshold", "0.3")


# Validation of the option keys

_INVALID_CASES = [
    ("loss.g_threshold", -0.1),
    ("loss.g_threshold", 1.5),
    ("loss.real_noise_max", -0.1),
    ("model.init", "he_normal"),
]


@pytest.mark.parametrize(
    "key, value", _INVALID_CASES, ids=[f"{key}={value!r}" for key, value in _INVALID_CASES])
def test_validate_rejects_invalid_option(key, value):
  config = dcgan_config.get_config()
  section, name = key.split(".")
  config[section][name] = value

  with pytest.raises(ConfigError, match=f"{key}={value!r}"):
    _validate(config)


@pytest.mark.parametrize("arch", ["reproduct", "reproduct4"])
def test_validate_reproduct_needs_multiple_of_16(arch):
  config = dcgan_config.get_config()
  config.model.arch = arch
  config.data.image_size = 40

  with pytest.raises(ConfigError, match="data.image_size=40"):
    _validate(config)


def test_validate_w7_accepts_multiple_of_8():
  config = dcgan_config.get_config()
  config.data.image_size = 40

  _validate(config)
