"""Tests for model.dtype = "bfloat16": bf16 compute, float32 state, metrics close to float32."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.data import pipeline
from jaxgan.errors import ConfigError
from jaxgan.families import dcgan as dcgan_family

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from configs import default as default_config  # pylint: disable=g-import-not-at-top,wrong-import-position

_NUM_STEPS = 4
# Bound on |bf16 - float32| / |float32| for every metric in the first 4 steps of the tiny config.
# Measured on 2 CPU cores with jax 0.10.2: at most 7.8e-3 (g_grad_norm; losses 6.1e-3, D's scores
# 7.1e-3). bf16 keeps 8 significant bits, a rounding error of up to 2^-9 = 2e-3 per operation,
# and the runs drift apart step by step. The bound is about 4x the measurement.
_METRIC_RTOL = 0.03
# Absolute slack for metrics near 0.
_METRIC_ATOL = 1e-3


def _tiny_config(dtype: str):
  config = default_config.get_config("tiny")
  config.model.dtype = dtype
  return config


def _batches(config) -> list[dict[str, np.ndarray]]:
  source = pipeline.make_source(config)
  size = config.data.batch_size
  return [{"image": source.read(np.arange(i * size, (i + 1) * size)).astype(np.float32) / 127.5 - 1}
          for i in range(_NUM_STEPS)]


def _train(config, batches):
  """Runs the jitted train step over `batches`; returns the state and the metrics of each step."""
  family = dcgan_family.FAMILY
  state = family.init_state(config, steps_per_epoch=_NUM_STEPS)
  step = jax.jit(family.make_train_step(config, steps_per_epoch=_NUM_STEPS))
  key = jax.random.key(config.seed)
  history = []
  for batch in batches:
    state, metrics = step(state, batch, key)
    history.append(jax.device_get(metrics))
  return state, history, step


@pytest.fixture(scope="module")
def runs():
  float32_config, bfloat16_config = _tiny_config("float32"), _tiny_config("bfloat16")
  batches = _batches(float32_config)
  return {"float32": (float32_config, *_train(float32_config, batches)),
          "bfloat16": (bfloat16_config, *_train(bfloat16_config, batches)), "batches": batches}


def test_bfloat16_step_computes_in_bfloat16(runs):
  config, state, _, step = runs["bfloat16"]
  jaxpr = str(jax.make_jaxpr(step)(state, runs["batches"][0], jax.random.key(0)))
  assert "conv_general_dilated" in jaxpr
  assert "bf16" in jaxpr

  _, float32_state, _, float32_step = runs["float32"]
  float32_jaxpr = str(jax.make_jaxpr(float32_step)(float32_state, runs["batches"][0],
                                                   jax.random.key(0)))
  assert "bf16" not in float32_jaxpr


def test_bfloat16_state_stays_float32(runs):
  _, state, _, _ = runs["bfloat16"]
  for field in ("g_params", "g_stats", "d_params", "d_stats", "g_opt_state", "d_opt_state"):
    leaves = jax.tree.leaves(getattr(state, field))
    assert leaves, field
    for leaf in leaves:
      # Adam's step counts are int32; every float array must be float32.
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32, field


def test_bfloat16_metrics_close_to_float32(runs):
  _, _, float32_history, _ = runs["float32"]
  _, _, bfloat16_history, _ = runs["bfloat16"]
  largest = 0.0
  for float32_metrics, bfloat16_metrics in zip(float32_history, bfloat16_history):
    for name, value in bfloat16_metrics.items():
      assert value.dtype == np.float32, name
      assert np.isfinite(value), name
      reference = float(float32_metrics[name])
      difference = abs(float(value) - reference)
      largest = max(largest, difference / max(abs(reference), 1e-6))
      assert difference <= _METRIC_RTOL * abs(reference) + _METRIC_ATOL, (name, float(value),
                                                                        reference)
  print(f"max relative metric difference bf16 vs float32 over {_NUM_STEPS} steps: {largest:.2e}")


def test_bfloat16_samples_are_float32(runs):
  config, state, _, _ = runs["bfloat16"]
  family = dcgan_family.FAMILY
  images = jax.jit(family.generate)(state, family.fixed_latents(config, 4))
  assert images.dtype == jnp.float32
  assert images.shape == (4, 16, 16, 3)
  assert np.all(np.isfinite(images))


def test_invalid_dtype_rejected():
  with pytest.raises(ConfigError, match=r"model\.dtype='float16'"):
    dcgan_family.FAMILY.validate(_tiny_config("float16"))
