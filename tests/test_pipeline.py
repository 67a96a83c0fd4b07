"""Tests of the tf.data pipeline: epoch order, resume position, process shards, scaling."""

import dataclasses

import numpy as np
import pytest

from jaxgan.data import pipeline
from jaxgan.data import source as source_lib
from jaxgan.errors import ConfigError
from jaxgan.errors import DataError

NUM_IMAGES = 22
SIZE = 4


def numbered_source() -> source_lib.ImageSource:
  """Images whose every pixel equals the image index, so batches reveal which images they hold."""
  images = np.broadcast_to(
      np.arange(NUM_IMAGES, dtype=np.uint8)[:, None, None, None], (NUM_IMAGES, SIZE, SIZE, 3))
  return source_lib.from_array("numbered", np.ascontiguousarray(images),
                               tuple(str(i) for i in range(NUM_IMAGES)))


def image_indices(dataset) -> list[list[int]]:
  """Recovers the image index of every image in every batch from its [-1, 1] pixels."""
  batches = []
  for element in pipeline.iterate_epoch(dataset):
    pixels = np.rint((element["image"][:, 0, 0, 0] + 1.0) * 127.5).astype(int)
    batches.append(pixels.tolist())
  return batches


def test_epoch_order_depends_on_seed_and_epoch():
  first = pipeline.epoch_order(seed=0, epoch=0, num_images=100)
  assert sorted(first.tolist()) == list(range(100))
  np.testing.assert_array_equal(first, pipeline.epoch_order(seed=0, epoch=0, num_images=100))
  assert not np.array_equal(first, pipeline.epoch_order(seed=0, epoch=1, num_images=100))
  assert not np.array_equal(first, pipeline.epoch_order(seed=1, epoch=0, num_images=100))


def test_epoch_drops_incomplete_batch():
  batches = image_indices(pipeline.make_epoch_dataset(
      numbered_source(), seed=3, epoch=0, global_batch_size=4))
  assert len(batches) == NUM_IMAGES // 4
  assert all(len(batch) == 4 for batch in batches)
  flat = [i for batch in batches for i in batch]
  assert len(set(flat)) == len(flat)
  assert flat == pipeline.epoch_order(3, 0, NUM_IMAGES)[:len(flat)].tolist()


def test_start_batch_skips_trained_batches():
  full = image_indices(pipeline.make_epoch_dataset(
      numbered_source(), seed=3, epoch=2, global_batch_size=4))
  resumed = image_indices(pipeline.make_epoch_dataset(
      numbered_source(), seed=3, epoch=2, global_batch_size=4, start_batch=2))
  assert resumed == full[2:]


def test_process_shards_form_global_batch():
  full = image_indices(pipeline.make_epoch_dataset(
      numbered_source(), seed=5, epoch=1, global_batch_size=4))
  shards = [
      image_indices(pipeline.make_epoch_dataset(
          numbered_source(), seed=5, epoch=1, global_batch_size=4,
          sharding=pipeline.Sharding(process_index=p, process_count=2)))
      for p in range(2)
  ]
  assert [a + b for a, b in zip(*shards)] == full


def test_batch_not_divisible_by_processes_rejected():
  with pytest.raises(ConfigError, match="data.batch_size=5"):
    pipeline.make_epoch_dataset(numbered_source(), seed=0, epoch=0, global_batch_size=5,
                                sharding=pipeline.Sharding(process_index=0, process_count=2))


def test_pixels_scaled_to_unit_range():
  images = np.zeros((4, SIZE, SIZE, 3), np.uint8)
  images[1] = 255
  images[2] = 128
  source = source_lib.from_array("levels", images, ("0", "1", "2", "3"))
  element = next(pipeline.iterate_epoch(pipeline.make_epoch_dataset(
      source, seed=0, epoch=0, global_batch_size=4)))
  values = sorted(float(v) for v in element["image"][:, 0, 0, 0])
  assert element["image"].dtype == np.float32
  assert values[0] == -1.0
  assert values[-1] == 1.0
  assert values[2] == pytest.approx(128 / 127.5 - 1.0, abs=1e-6)


def test_steps_per_epoch_needs_one_batch():
  assert pipeline.steps_per_epoch(100, 32) == 3
  with pytest.raises(ConfigError, match="data.batch_size=64"):
    pipeline.steps_per_epoch(10, 64)


@pytest.mark.parametrize("num_images, batch_size, expected", [
    (80, 64, "80 images make 1 batch of 64 per epoch; the last incomplete batch is dropped, so 16 "
             "image(s) go unused"),
    (128, 64, "128 images make 2 batches of 64 per epoch"),
])
def test_describe_epoch_counts_unused_images(num_images, batch_size, expected):
  text = pipeline.describe_epoch(num_images, batch_size)

  assert text.startswith(expected)
  if num_images % batch_size == 0:
    assert "unused" not in text


def test_read_error_raised_without_tf_wrapper():
  source = numbered_source()

  def read(indices: np.ndarray) -> np.ndarray:
    if 5 in indices.tolist():
      raise DataError("Image file 5.png could not be read while streaming: broken. Remove it.")
    return source.read(indices)

  failing = dataclasses.replace(source, read=read)
  dataset = pipeline.make_epoch_dataset(failing, seed=0, epoch=0, global_batch_size=2)

  with pytest.raises(DataError) as error:
    list(pipeline.iterate_epoch(dataset))

  assert type(error.value) is DataError
  assert str(error.value) == (
      "Image file 5.png could not be read while streaming: broken. Remove it.")
