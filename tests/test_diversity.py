import numpy as np
import pytest

from jaxgan.evaluation import diversity


def test_mean_pairwise_distance_matches_loop():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, size=(5, 4, 4, 3))
  expected = np.mean([np.linalg.norm(images[i] - images[j])
                      for i in range(5) for j in range(i + 1, 5)]) / np.sqrt(48)
  assert diversity.mean_pairwise_distance(images) == pytest.approx(expected, rel=1e-9)


def test_identical_images_have_zero_distance():
  images = np.ones((6, 8, 8, 3))
  assert diversity.mean_pairwise_distance(images) == pytest.approx(0.0, abs=1e-6)


def test_distance_does_not_grow_with_resolution():
  rng = np.random.default_rng(1)
  small = rng.uniform(-1, 1, size=(8, 8, 8, 3))
  large = np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)
  assert diversity.mean_pairwise_distance(large) == pytest.approx(
      diversity.mean_pairwise_distance(small), rel=1e-9)


def test_single_image_is_rejected():
  with pytest.raises(ValueError, match="at least 2 images"):
    diversity.mean_pairwise_distance(np.zeros((1, 4, 4, 3)))
