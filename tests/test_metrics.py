"""Tests of the metric math: Fréchet distance, KID, SWD, diversity, nearest neighbours, records."""

import numpy as np
import pytest
import scipy.linalg

from jaxgan.data import generated
from jaxgan.evaluation import diversity
from jaxgan.evaluation import evaluator
from jaxgan.evaluation import feature_distances
from jaxgan.evaluation import nearest
from jaxgan.evaluation import results
from jaxgan.evaluation import swd

# Fewer patches and directions than the defaults keep these tests fast; the code path is the same.
FAST_SWD = swd.SWDSettings(patches_per_image=32, num_repeats=2, directions_per_repeat=64)


def reference_frechet(first: np.ndarray, second: np.ndarray) -> float:
  """The textbook formula with scipy's general matrix square root, in float64."""
  mu1, mu2 = first.mean(axis=0), second.mean(axis=0)
  sigma1, sigma2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
  root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
               - 2 * np.trace(root))


def reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 with the cubic polynomial kernel, written as explicit sums."""
  d = x.shape[1]

  def k(a, b):
    return (np.dot(a, b) / d + 1.0) ** 3

  m, n = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
  return xx + yy - 2 * xy


def statistics(features):
  return feature_distances.gaussian_statistics(features)


def test_frechet_matches_scipy_reference():
  rng = np.random.default_rng(0)
  first = rng.normal(size=(200, 12))
  second = rng.normal(loc=0.3, scale=1.5, size=(150, 12)) @ rng.normal(size=(12, 12))
  expected = reference_frechet(first, second)
  actual = feature_distances.frechet_distance(statistics(first), statistics(second))
  assert actual == pytest.approx(expected, rel=1e-8)


def test_frechet_of_set_with_itself_is_zero():
  features = np.random.default_rng(1).normal(size=(50, 64))  # fewer samples than dimensions
  value = feature_distances.frechet_distance(statistics(features), statistics(features))
  assert value == pytest.approx(0.0, abs=1e-8)


def test_frechet_grows_with_mean_shift():
  rng = np.random.default_rng(2)
  base = rng.normal(size=(300, 8))
  values = [feature_distances.frechet_distance(statistics(base), statistics(base + shift))
            for shift in (0.0, 0.5, 1.0)]
  assert values[0] < values[1] < values[2]
  assert values[2] == pytest.approx(8.0, rel=1e-6)  # |shift|^2 summed over 8 dimensions


def test_kid_matches_loop_reference():
  rng = np.random.default_rng(3)
  real = rng.normal(size=(9, 5))
  fake = rng.normal(loc=0.5, size=(9, 5))
  expected = reference_mmd2(real, fake)
  assert feature_distances.unbiased_mmd2(real, fake) == pytest.approx(expected, rel=1e-10)
  # One subset of all rows is a permutation of each set, which leaves the estimate unchanged.
  kid = feature_distances.kernel_distance(real, fake, subset_size=9, num_subsets=1)
  assert kid.mean == pytest.approx(expected, rel=1e-10)
  assert kid.subset_size == 9


def test_kid_near_zero_for_same_distribution():
  rng = np.random.default_rng(4)
  real = rng.normal(size=(400, 16))
  same = rng.normal(size=(400, 16))
  shifted = rng.normal(loc=0.5, size=(400, 16))
  same_kid = feature_distances.kernel_distance(real, same, subset_size=100, num_subsets=20)
  shifted_kid = feature_distances.kernel_distance(real, shifted, subset_size=100,
                                                  num_subsets=20)
  assert abs(same_kid.mean) < 3 * same_kid.std
  assert shifted_kid.mean > 10 * abs(same_kid.mean)


def test_kid_is_seeded():
  rng = np.random.default_rng(5)
  real, fake = rng.normal(size=(60, 4)), rng.normal(size=(60, 4))
  first = feature_distances.kernel_distance(real, fake, subset_size=20, num_subsets=5, seed=7)
  second = feature_distances.kernel_distance(real, fake, subset_size=20, num_subsets=5, seed=7)
  assert first == second


def face_images(count: int = 32, size: int = 32, seed: int = 0) -> np.ndarray:
  source = generated.make_source(count, size, seed=seed)
  return source.read(np.arange(count)).astype(np.float64) / 127.5 - 1.0


def test_laplacian_pyramid_levels_and_reconstruction():
  images = face_images(4, 64)
  levels = swd.laplacian_pyramid(images, min_resolution=16)
  assert [level.shape[1] for level in levels] == [64, 32, 16]
  reconstructed = levels[-1]
  for level in reversed(levels[:-1]):
    reconstructed = swd._upsample(reconstructed) + level  # pylint: disable=protected-access
  np.testing.assert_allclose(reconstructed, images, atol=1e-10)


def test_swd_of_set_with_itself_is_zero():
  images = face_images()
  result = swd.sliced_wasserstein_distance(images, images, FAST_SWD)
  assert result.resolutions == [32, 16]
  assert result.mean == pytest.approx(0.0, abs=1e-9)


def test_swd_grows_with_blur():
  images = face_images()
  values = []
  blurred = images
  for _ in range(4):
    values.append(swd.sliced_wasserstein_distance(images, blurred, FAST_SWD).mean)
    blurred = swd._blur(blurred)  # pylint: disable=protected-access
  assert all(a < b for a, b in zip(values, values[1:])), values


def test_swd_grows_with_noise():
  images = face_images()
  noise = np.random.default_rng(6).normal(size=images.shape)
  values = [swd.sliced_wasserstein_distance(images, images + std * noise, FAST_SWD).mean
            for std in (0.0, 0.05, 0.1, 0.2, 0.4)]
  assert all(a < b for a, b in zip(values, values[1:])), values


def test_swd_rejects_different_shapes():
  with pytest.raises(ValueError, match="equal shape"):
    swd.sliced_wasserstein_distance(face_images(4), face_images(5), FAST_SWD)


def test_constant_generator_flags_collapse():
  reals = face_images(16)
  constant = np.repeat(reals[:1], 16, axis=0)
  report = diversity.compare_with_real(constant, reals)
  assert report["fake"] == pytest.approx(0.0, abs=1e-6)
  assert report["collapsed"]
  healthy = diversity.compare_with_real(face_images(16, seed=1), reals)
  assert not healthy["collapsed"]
  assert healthy["ratio"] == pytest.approx(1.0, abs=0.3)


def test_pairwise_distances_match_loop():
  rng = np.random.default_rng(7)
  first, second = rng.normal(size=(3, 4, 4, 3)), rng.normal(size=(5, 4, 4, 3))
  expected = np.array([[np.linalg.norm(a - b) / np.sqrt(48) for b in second] for a in first])
  np.testing.assert_allclose(diversity.pairwise_distances(first, second), expected, rtol=1e-9)


def test_nearest_neighbour_finds_copies():
  train = face_images(20)
  fakes = train[[3, 7, 11]] + 1e-4
  distances, indices = nearest.nearest_distances(fakes, train)
  assert indices.tolist() == [3, 7, 11]
  assert np.all(distances < 1e-3)
  report = nearest.memorization_report(fakes, train)
  assert report["reference"] == "train_leave_one_out"
  assert report["median_ratio"] < 0.01
  assert report["fraction_below_real_percentile_1"] == 1.0


def test_nearest_neighbour_leave_one_out_skips_self():
  train = face_images(10)
  distances, indices = nearest.nearest_distances(train, train, exclude_same_index=True)
  assert np.all(indices != np.arange(10))
  assert np.all(distances > 0)


def test_fresh_samples_are_not_memorised():
  report = nearest.memorization_report(face_images(20, seed=3), face_images(20))
  assert report["median_ratio"] > 0.5


def record(**overrides):
  settings = {key: 1 for key in results.COMPARED_SETTINGS if key != "metric"}
  settings.update({"step": 10, "workdir": "runs/a"})
  settings.update(overrides)
  return results.make_record("swd", 5.0, settings)


def test_compare_accepts_equal_settings():
  comparison = results.compare(record(), record(step=20, workdir="runs/b"))
  assert comparison["difference"] == 0.0
  assert comparison["second"]["step"] == 20


def test_compare_rejects_mismatched_settings():
  with pytest.raises(results.SettingsMismatchError) as error:
    results.compare(record(), record(num_fake=500, resize_method="nearest"))
  message = str(error.value)
  assert "num_fake: 1 vs 500" in message
  assert "resize_method" in message
  assert "num_real" not in message


def test_record_requires_all_settings():
  with pytest.raises(ValueError, match="seed"):
    results.make_record("swd", 1.0, {"step": 1})


def test_parse_metrics_rejects_unknown_name():
  assert evaluator.parse_metrics("swd, fid,swd") == ["swd", "fid"]
  with pytest.raises(evaluator.EvaluationError, match="isd"):
    evaluator.parse_metrics("swd,isd")
