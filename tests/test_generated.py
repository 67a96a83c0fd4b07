"""Tests for the procedurally drawn cartoon-faces dataset."""

import numpy as np
import pytest

from jaxgan.data import generated


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_draw_face_shape_and_dtype(size):
  image = generated.draw_face(0, size)
  assert image.shape == (size, size, 3)
  assert image.dtype == np.uint8


def test_draw_faces_shape_and_dtype():
  images = generated.draw_faces(3, 24, num_threads=1)
  assert images.shape == (3, 24, 24, 3)
  assert images.dtype == np.uint8


def test_draw_face_deterministic():
  first = generated.draw_face(5, 32, seed=7)
  second = generated.draw_face(5, 32, seed=7)
  np.testing.assert_array_equal(first, second)


def test_draw_face_differs_across_seeds():
  for index in range(4):
    assert not np.array_equal(generated.draw_face(index, 32, seed=0),
                              generated.draw_face(index, 32, seed=1))


def test_draw_faces_matches_draw_face():
  images = generated.draw_faces(6, 32, seed=3, num_threads=2)
  for index in range(6):
    np.testing.assert_array_equal(images[index], generated.draw_face(index, 32, seed=3))


def test_draw_faces_independent_of_count():
  # Image i depends only on (seed, i), not on how many images are drawn with it.
  many = generated.draw_faces(10, 32, seed=2, num_threads=2)
  few = generated.draw_faces(4, 32, seed=2, num_threads=1)
  np.testing.assert_array_equal(many[:4], few)


def test_draw_faces_same_for_any_thread_count():
  one_thread = generated.draw_faces(16, 32, seed=4, num_threads=1)
  two_threads = generated.draw_faces(16, 32, seed=4, num_threads=2)
  default_threads = generated.draw_faces(16, 32, seed=4)
  np.testing.assert_array_equal(one_thread, two_threads)
  np.testing.assert_array_equal(one_thread, default_threads)


def test_draw_faces_diverse():
  images = generated.draw_faces(64, 32).astype(np.float32) / 255
  flat = images.reshape(len(images), -1)
  # Root-mean-square pixel difference of every pair, in [0, 1].
  distances = np.sqrt(((flat[:, None, :] - flat[None, :, :])**2).mean(axis=-1))
  pairs = distances[np.triu_indices(len(images), k=1)]
  # Measured on seed 0: mean 0.30, min 0.16.
  assert pairs.min() > 0.05, "two of 64 faces are (nearly) identical"
  assert pairs.mean() > 0.2, f"faces are too alike: mean RMS distance {pairs.mean():.3f}"


def test_faces_yellow_in_centre():
  images = generated.draw_faces(64, 32).astype(np.float32) / 255
  # The central quarter of the frame: mostly skin, plus the eyes and nose.
  red, green, blue = images[:, 12:20, 12:20].mean(axis=(0, 1, 2))
  assert red > 0.6
  assert green > 0.55
  assert blue < green - 0.1


def test_make_source():
  images = generated.draw_faces(5, 32, seed=1)
  image_source = generated.make_source(5, 32, seed=1)
  assert image_source.name == "generated cartoon faces (5 images, 32x32, seed 1)"
  assert image_source.num_images == 5
  assert image_source.image_size == 32
  assert image_source.ids == tuple(f"generated/{i}" for i in range(5))
  np.testing.assert_array_equal(image_source.read(np.array([4, 0])), images[[4, 0]])


@pytest.mark.parametrize("call, argument, value", [
    (lambda: generated.draw_face(-1, 32), "index", "-1"),
    (lambda: generated.draw_face(0, 15), "size", "15"),
    (lambda: generated.draw_face(0, 1025), "size", "1025"),
    (lambda: generated.draw_face(0, 32, seed=-3), "seed", "-3"),
    (lambda: generated.draw_faces(0, 32), "num_images", "0"),
    (lambda: generated.draw_faces(2, 8), "size", "8"),
    (lambda: generated.draw_faces(2, 32, seed=-1), "seed", "-1"),
    (lambda: generated.draw_faces(2, 32, num_threads=-2), "num_threads", "-2"),
    (lambda: generated.make_source(0, 32), "num_images", "0"),
    (lambda: generated.make_source(2, 2048), "image_size", "2048"),
    (lambda: generated.make_source(2, 32, seed=-5), "seed", "-5"),
])
def test_invalid_argument_rejected(call, argument, value):
  with pytest.raises(ValueError) as error:
    call()
  message = str(error.value)
  assert argument in message
  assert value in message


def test_size_range_in_message():
  with pytest.raises(ValueError, match="16 .. 1024"):
    generated.draw_faces(1, 2000)


@pytest.mark.parametrize("call", [
    lambda: generated.draw_face(0, 32.0),
    lambda: generated.draw_faces(1.5, 32),
    lambda: generated.draw_faces(2, 32, seed="0"),
    lambda: generated.make_source(2, True),
])
def test_non_int_argument_rejected(call):
  with pytest.raises(TypeError):
    call()
