"""Tests for the DCGAN train-step options: thresholded G loss and augmentation of real images.

Every step runs at 16x16, width 4, batch 4, so each test compiles and runs in seconds on a CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses
from jaxgan.base_configs import dcgan as dcgan_config
from jaxgan.families import dcgan as dcgan_family


def _tiny_config(**loss_overrides):
  config = dcgan_config.get_config()
  config.data.image_size = 16
  config.data.batch_size = 4
  config.model.width = 4
  config.model.latent_dim = 8
  for name, value in loss_overrides.items():
    config.loss[name] = value
  return config


def _real_batch() -> jax.Array:
  noise = jax.random.normal(jax.random.key(5), (4, 16, 16, 3))
  return jnp.clip(0.3 * noise, -1.0, 1.0)


def _run_step(config, batch, key=jax.random.key(7)):
  state = dcgan_family.FAMILY.init_state(config, steps_per_epoch=10)
  step = jax.jit(dcgan_family.FAMILY.make_train_step(config, steps_per_epoch=10))
  return step(state, batch, key)


def _metrics_equal(first: dict, second: dict) -> None:
  assert sorted(first) == sorted(second)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)


# Thresholded G loss


def test_step_inputs_carry_threshold():
  config = _tiny_config(g_threshold=0.5)

  inputs = dcgan_family.FAMILY.step_inputs(config)

  assert inputs["g_threshold"].dtype == np.float32
  assert float(inputs["g_threshold"]) == 0.5


def test_threshold_compiles_step_once():
  config = _tiny_config()
  state = dcgan_family.FAMILY.init_state(config, steps_per_epoch=10)
  step = jax.jit(dcgan_family.FAMILY.make_train_step(config, steps_per_epoch=10))
  real = _real_batch()

  g_losses = {}
  for threshold in (0.0, 0.25, 0.5, 0.75):
    batch = {"image": real, "g_threshold": np.float32(threshold)}
    _, metrics = step(state, batch, jax.random.key(7))
    g_losses[threshold] = float(metrics["g_loss"])

  assert step._cache_size() == 1
  # The D update does not depend on the threshold, so G's loss differs only through its targets.
  assert len(set(g_losses.values())) == 4


def test_missing_threshold_input_uses_config():
  config = _tiny_config(g_threshold=0.25)
  real = _real_batch()

  _, from_config = _run_step(config, {"image": real})
  _, from_batch = _run_step(config, {"image": real, "g_threshold": np.float32(0.25)})

  _metrics_equal(from_config, from_batch)


def test_threshold_zero_matches_plain_loss():
  # The thresholded loss with threshold 0 is the plain loss bit for bit.
  logits = jax.random.normal(jax.random.key(3), (4,))

  plain = losses.generator_loss(logits)
  thresholded = losses.thresholded_generator_loss(logits, jnp.float32(0.0))

  assert float(plain) == float(thresholded)


# Augmentation of the real images


def test_defaults_ignore_augment_stream(monkeypatch):
  # With both options off, the step must not use the augmentation key: moving it to another
  # stream leaves every metric bit-identical.
  config = _tiny_config()
  batch = {"image": _real_batch()}
  _, before = _run_step(config, batch)

  monkeypatch.setattr(dcgan_family, "_AUGMENT_STREAM", 12345)
  _, after = _run_step(config, batch)

  _metrics_equal(before, after)


def test_augment_real_off_returns_input():
  real = _real_batch()

  result = dcgan_family.augment_real(
      real, jax.random.key(0), random_flip=False, noise_max=0.0)

  assert result is real


def test_augmentation_keeps_z_and_label_keys():
  # The real target comes from label_key; augmentation must not shift it.
  batch = {"image": _real_batch()}
  _, plain = _run_step(_tiny_config(), batch)
  config = _tiny_config(real_noise_max=0.1)
  config.data.random_flip = True
  _, augmented = _run_step(config, batch)

  assert float(plain["real_target"]) == float(augmented["real_target"])


def test_real_noise_changes_d_real():
  batch = {"image": _real_batch()}

  _, plain = _run_step(_tiny_config(), batch)
  _, noisy = _run_step(_tiny_config(real_noise_max=0.5), batch)

  assert float(plain["d_real"]) != float(noisy["d_real"])
  for name, value in noisy.items():
    assert np.isfinite(float(value)), name


def test_random_flip_step_finite():
  config = _tiny_config()
  config.data.random_flip = True

  new_state, metrics = _run_step(config, {"image": _real_batch()})

  assert int(new_state.step) == 1
  for name, value in metrics.items():
    assert np.isfinite(float(value)), name


def test_augment_real_flips_some_images():
  images = jax.random.uniform(jax.random.key(1), (16, 8, 8, 3), minval=-1.0, maxval=1.0)

  result = np.asarray(dcgan_family.augment_real(
      images, jax.random.key(2), random_flip=True, noise_max=0.0))

  flipped = [np.array_equal(result[i], np.asarray(images)[i, :, ::-1]) for i in range(16)]
  unchanged = [np.array_equal(result[i], np.asarray(images)[i]) for i in range(16)]
  assert all(f or u for f, u in zip(flipped, unchanged))
  assert 0 < sum(flipped) < 16


@pytest.mark.parametrize("seed", range(4))
def test_augment_real_noise_std_in_range(seed):
  images = jnp.zeros((8, 16, 16, 3))

  result = np.asarray(dcgan_family.augment_real(
      images, jax.random.key(seed), random_flip=False, noise_max=0.1))

  # 6144 values: the sample std is within a few percent of the drawn std, which is in (0, 0.1).
  assert 0 < result.std() < 0.1 * 1.05
