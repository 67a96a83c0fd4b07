"""Tests for the BCE losses in losses.py against float64 NumPy computations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses

_LOGITS = np.array([-100.0, -30.0, -2.5, -0.3, 0.0, 0.7, 4.0, 30.0, 100.0], np.float32)
_TARGETS = np.array([1.0, 0.0, 0.9, 1.0, 0.5, 0.0, 0.95, 1.0, 0.0], np.float32)


def _numpy_bce(logits, targets) -> float:
  """Mean of -t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x)) in float64.

  log(sigmoid(x)) = -log(1 + exp(-x)) and log(1 - sigmoid(x)) = -log(1 + exp(x)), written with
  logaddexp so that |x| = 100 does not round sigmoid(x) to 0 or 1.
  """
  x = np.asarray(logits, np.float64)
  t = np.broadcast_to(np.asarray(targets, np.float64), x.shape)
  log_sigmoid = -np.logaddexp(0.0, -x)
  log_one_minus_sigmoid = -np.logaddexp(0.0, x)
  return float(np.mean(-t * log_sigmoid - (1 - t) * log_one_minus_sigmoid))


# bce


def test_bce_matches_numpy():
  result = losses.bce(jnp.asarray(_LOGITS), jnp.asarray(_TARGETS))

  assert float(result) == pytest.approx(_numpy_bce(_LOGITS, _TARGETS), rel=1e-6)


def test_bce_large_logits_finite():
  logits = jnp.array([-1000.0, -100.0, 100.0, 1000.0])
  targets = jnp.array([1.0, 0.0, 0.9, 0.0])

  result = losses.bce(logits, targets)

  assert np.isfinite(float(result))
  assert float(result) == pytest.approx(_numpy_bce(logits, targets), rel=1e-6)


def test_bce_scalar_target_broadcasts():
  result = losses.bce(jnp.asarray(_LOGITS), 0.9)

  assert float(result) == pytest.approx(_numpy_bce(_LOGITS, 0.9), rel=1e-6)


@pytest.mark.parametrize("logit, target, expected", [
    (0.0, 1.0, math.log(2)),
    (0.0, 0.0, math.log(2)),
    (0.0, 0.9, math.log(2)),
    (math.log(3), 1.0, math.log(4 / 3)),  # sigmoid(log 3) = 3/4.
    (math.log(3), 0.0, math.log(4)),
    (100.0, 0.0, 100.0),
    (-100.0, 1.0, 100.0),
    (100.0, 0.9, 10.0),
    (100.0, 1.0, 0.0),
])
def test_bce_hand_values(logit, target, expected):
  result = losses.bce(jnp.array([logit]), jnp.array([target]))

  assert float(result) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_bce_gradient_large_logits_finite():
  # d/dx of the mean BCE is (sigmoid(x) - t) / n, which is finite for every x.
  logits = jnp.array([-100.0, -30.0, 0.0, 30.0, 100.0])
  targets = jnp.array([1.0, 0.0, 0.9, 1.0, 0.0])

  grad = jax.grad(losses.bce)(logits, targets)

  x = np.asarray(logits, np.float64)
  expected = (1 / (1 + np.exp(-x)) - np.asarray(targets, np.float64)) / x.size
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


# discriminator_loss and generator_loss


def test_discriminator_loss_sum():
  real = np.array([2.0, -1.0, 0.5, 3.0], np.float32)
  fake = np.array([-2.0, 0.3, 1.5, -4.0], np.float32)

  result = losses.discriminator_loss(
      jnp.asarray(real), jnp.asarray(fake), jnp.float32(0.93), "sum")

  expected = _numpy_bce(real, np.float32(0.93)) + _numpy_bce(fake, 0.0)
  assert float(result) == pytest.approx(expected, rel=1e-6)


def test_discriminator_loss_mean():
  real = np.array([2.0, -1.0, 0.5, 3.0], np.float32)
  fake = np.array([-2.0, 0.3, 1.5, -4.0], np.float32)

  result = losses.discriminator_loss(
      jnp.asarray(real), jnp.asarray(fake), jnp.float32(0.93), "mean")

  expected = 0.5 * (_numpy_bce(real, np.float32(0.93)) + _numpy_bce(fake, 0.0))
  assert float(result) == pytest.approx(expected, rel=1e-6)


def test_discriminator_loss_zero_logits():
  # Both terms are log 2 at logit 0, whatever the real target.
  zeros = jnp.zeros((4,))

  total = losses.discriminator_loss(zeros, zeros, jnp.float32(0.95), "sum")
  half = losses.discriminator_loss(zeros, zeros, jnp.float32(0.95), "mean")

  assert float(total) == pytest.approx(2 * math.log(2), rel=1e-6)
  assert float(half) == pytest.approx(math.log(2), rel=1e-6)


def test_discriminator_loss_rejects_unknown_reduction():
  zeros = jnp.zeros((4,))

  with pytest.raises(ValueError, match="'max'"):
    losses.discriminator_loss(zeros, zeros, 1.0, "max")


def test_generator_loss_matches_numpy():
  result = losses.generator_loss(jnp.asarray(_LOGITS))

  assert float(result) == pytest.approx(_numpy_bce(_LOGITS, 1.0), rel=1e-6)


def test_generator_loss_non_saturating():
  # BCE(D(G(z)), 1) = -log(sigmoid(x)): large for confident fakes, near 0 for fooled D.
  result = losses.generator_loss(jnp.array([-50.0, 50.0]))

  assert float(result) == pytest.approx(25.0, rel=1e-6)


# thresholded_generator_loss

# Eight logits with distinct values, so the k lowest are unambiguous for every threshold.
_FAKE_LOGITS = np.array([1.5, -3.0, 0.2, 7.0, -0.4, 2.5, -1.2, 0.0], np.float32)


def _numpy_thresholded_loss(logits, threshold: float) -> float:
  """The thresholded G loss in float64: target 1 when off, else 0.5 for the k lowest, 0.95."""
  if threshold == 0:
    return _numpy_bce(logits, 1.0)
  k = math.floor(threshold * len(logits))
  targets = np.full(len(logits), 0.95)
  targets[np.argsort(np.asarray(logits, np.float64), kind="stable")[:k]] = 0.5
  return _numpy_bce(logits, targets)


@pytest.mark.parametrize("threshold", [0.0, 0.25, 0.5, 0.75])
def test_thresholded_generator_loss_matches_numpy(threshold):
  result = losses.thresholded_generator_loss(jnp.asarray(_FAKE_LOGITS), jnp.float32(threshold))

  assert float(result) == pytest.approx(_numpy_thresholded_loss(_FAKE_LOGITS, threshold), rel=1e-6)


def test_thresholded_generator_loss_zero_is_plain_loss():
  # Threshold 0 must give exactly the plain loss, so runs without the option are unchanged.
  plain = losses.generator_loss(jnp.asarray(_FAKE_LOGITS))
  thresholded = losses.thresholded_generator_loss(jnp.asarray(_FAKE_LOGITS), jnp.float32(0.0))

  assert float(thresholded) == float(plain)


def test_thresholded_generator_loss_hand_targets():
  # Threshold 0.25 of 8 fakes: the 2 lowest logits (-3.0 and -1.2) get target 0.5.
  targets = np.full(8, 0.95)
  targets[[1, 6]] = 0.5

  result = losses.thresholded_generator_loss(jnp.asarray(_FAKE_LOGITS), jnp.float32(0.25))

  assert float(result) == pytest.approx(_numpy_bce(_FAKE_LOGITS, targets), rel=1e-6)


def test_thresholded_generator_loss_small_threshold_selects_none():
  # floor(0.1 * 8) = 0: no fake gets 0.5, but all get 0.95 because the option is on.
  result = losses.thresholded_generator_loss(jnp.asarray(_FAKE_LOGITS), jnp.float32(0.1))

  assert float(result) == pytest.approx(_numpy_bce(_FAKE_LOGITS, 0.95), rel=1e-6)


def test_thresholded_generator_loss_compiles_once():
  traces = []

  @jax.jit
  def loss(logits, threshold):
    traces.append(1)
    return losses.thresholded_generator_loss(logits, threshold)

  for threshold in (0.0, 0.25, 0.5, 0.75, 1.0):
    result = loss(jnp.asarray(_FAKE_LOGITS), jnp.float32(threshold))
    assert float(result) == pytest.approx(
        _numpy_thresholded_loss(_FAKE_LOGITS, threshold), rel=1e-6)

  assert len(traces) == 1
  assert loss._cache_size() == 1
