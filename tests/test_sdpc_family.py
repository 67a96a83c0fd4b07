"""The SDPC family through the shared trainer: dictionary updates, outputs and exact resume."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import checkpoint
from jaxgan import families
from jaxgan import train
from jaxgan.errors import ConfigError
from jaxgan.families import sdpc as sdpc_family

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from configs import sdpc_simpsons  # pylint: disable=g-import-not-at-top,wrong-import-position


def tiny_config(**overrides):
  config = sdpc_simpsons.get_config("tiny")
  for key, value in overrides.items():
    section, name = key.split(".")
    config[section][name] = value
  return config


def restore(config, workdir):
  family = families.get("sdpc")
  checkpointer = checkpoint.Checkpointer(workdir, keep=10)
  state, meta = checkpointer.restore(checkpointer.latest_step(), family.init_state(config, 1))
  checkpointer.close()
  return state, meta


def test_update_keeps_atoms_unit_norm():
  config = tiny_config()
  family = families.get("sdpc")
  state = family.init_state(config, 4)
  step = jax.jit(family.make_train_step(config, 4))
  images = jax.random.uniform(jax.random.key(0), (8, 24, 24, 3), minval=-1, maxval=1)
  for index in range(3):
    new_state, metrics = step(state, {"image": images}, jax.random.key(index))
    for old, new in zip(state.dictionaries, new_state.dictionaries):
      norms = jnp.sqrt(jnp.sum(new**2, axis=(0, 1, 2)))
      np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
      assert not np.array_equal(old, new)
    state = new_state
  assert int(state.step) == 3
  for name in ("recon_error_1", "recon_error_2", "active_1", "active_2", "energy",
               "iterations", "dictionary_loss_1", "dictionary_loss_2"):
    assert np.isfinite(float(metrics[name])), name


def test_learning_lowers_reconstruction_loss():
  config = tiny_config(**{"optim.dictionary_lrs": (0.02, 0.02)})
  family = families.get("sdpc")
  state = family.init_state(config, 4)
  step = jax.jit(family.make_train_step(config, 4))
  images = jax.random.uniform(jax.random.key(1), (8, 24, 24, 3), minval=-1, maxval=1)
  images = jax.image.resize(images[:, ::4, ::4], (8, 24, 24, 3), "linear")  # smooth images
  losses = []
  for index in range(15):
    state, metrics = step(state, {"image": images}, jax.random.key(index))
    losses.append(float(metrics["dictionary_loss_1"]))
  assert losses[-1] < losses[0]


def test_atom_grid_shape_and_range():
  config = tiny_config()
  family = families.get("sdpc")
  state = family.init_state(config, 4)
  images = family.generate(state, family.fixed_latents(config, 64))
  rows, columns = family.grid_shape(config)
  # Receptive field of layer 2: 6 + (5 - 1) * 2 = 14 pixels.
  assert images.shape == (rows * columns, 14, 14, 3)
  assert float(jnp.max(jnp.abs(images))) == pytest.approx(1.0, abs=1e-6)


def test_training_writes_atoms_and_resumes_exactly(tmp_path):
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  train.train_and_evaluate(tiny_config(), str(straight))
  train.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), str(resumed))
  train.train_and_evaluate(tiny_config(), str(resumed))

  grid = Image.open(straight / "samples" / "epoch_0002.png")
  assert grid.size[0] > 8 * 14
  straight_state, straight_meta = restore(tiny_config(), str(straight))
  resumed_state, resumed_meta = restore(tiny_config(), str(resumed))
  for a, b in zip(jax.tree.leaves(straight_state), jax.tree.leaves(resumed_state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert straight_meta.history == resumed_meta.history
  assert straight_meta.history["recon_error_1"][-1] < 1.5


@pytest.mark.parametrize("key,value,message", [
    ("model.lambdas", (0.3,), "one entry per layer"),
    ("model.strides", (0, 1), "must be integers >= 1"),
    ("optim.dictionary_lrs", (0.0, 1e-3), "must be numbers > 0"),
    ("model.preprocess", "zscore,sharpen", "unknown preprocessing step"),
    ("model.kernel_sizes", (30, 5), "smaller than its"),
])
def test_invalid_config_rejected(key, value, message):
  config = tiny_config()
  section, name = key.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=message):
    sdpc_family.FAMILY.validate(config)


@pytest.mark.parametrize("module, args, message", [
    ("jaxgan.evaluate", ("--metrics=swd", "--num=16"), "jaxgan.evaluate has no images to score"),
    ("jaxgan.sample", ("--num=4",), "--num images cannot be drawn"),
])
def test_image_tools_reject_sdpc_run(tmp_path, module, args, message):
  # The family is checked against config.json before any checkpoint is read.
  (tmp_path / "config.json").write_text(tiny_config().to_json())
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  result = subprocess.run(
      [sys.executable, "-m", module, f"--workdir={tmp_path}", *args, f"--out={tmp_path / 'x'}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)

  assert result.returncode == 2, result.stderr[-3000:]
  assert "The sdpc family draws no images from latents" in result.stderr
  assert message in result.stderr
  assert "--grid PATH.png" in result.stderr
  assert result.stderr.count("\n") == 1
