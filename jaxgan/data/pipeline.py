"""The tf.data input pipeline: image source -> shuffled, batched, per-process shards.

The order of images in an epoch depends only on (seed, epoch), so a resumed run gets exactly the
batches it would have got without the stop. It rebuilds the epoch's order and skips the batches
it already trained on. Each global batch is the same set of images whatever the number of
processes; process p receives columns [p * B/P, (p + 1) * B/P) of it.
"""

import dataclasses
import threading
from typing import Callable, Iterator

import ml_collections
import numpy as np
from absl import logging

from jaxgan.data import source as source_lib
from jaxgan.data import tf_setup
from jaxgan.errors import ConfigError
from jaxgan.errors import DataError
from jaxgan.errors import JaxganError

# JaxganErrors raised by source reads inside tf.data, which wraps them in an OpError. They are
# kept here so that `iterate_epoch` can raise the original error, with its advice, in their place.
_read_errors: list[JaxganError] = []
_read_errors_lock = threading.Lock()


class StreamingReadError(DataError):
  """The short stand-in for a JaxganError that a read inside tf.data raised.

  It is raised from the read with no chained traceback, so that the error that TensorFlow logs
  for each failed element stays a few lines long.
  """


def recording_read(read: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
  """Wraps a source's `read` for tf.numpy_function so that `iterate_epoch` can report its errors."""

  def wrapped(indices: np.ndarray) -> np.ndarray:
    try:
      return read(indices)
    except JaxganError as error:
      with _read_errors_lock:
        _read_errors.append(error)
      raise StreamingReadError(str(error)) from None

  return wrapped


def make_source(config: ml_collections.ConfigDict) -> source_lib.ImageSource:
  """Creates the image source that `config.data.source` names, at `config.data.image_size`."""
  data = config.data
  min_images = data.batch_size
  cache_max_bytes = int(data.cache_max_gib * (1 << 30))

  if data.source == "generated":
    from jaxgan.data import generated  # pylint: disable=g-import-not-at-top

    if data.num_generated < min_images:
      raise ConfigError(
          f"Invalid config value data.num_generated={data.num_generated}: it must be at least "
          f"data.batch_size={data.batch_size}, because an epoch needs one full batch.")
    return generated.make_source(data.num_generated, data.image_size, seed=config.seed)

  if data.source == "folder":
    from jaxgan.data import folder  # pylint: disable=g-import-not-at-top

    return folder.make_source(
        data.dir, data.image_size, exclude_ids=folder_exclude_ids(data), min_images=min_images,
        cache_max_bytes=cache_max_bytes, num_threads=data.num_threads)

  if data.source == "tfds":
    from jaxgan.data import simpsons_faces_tfds  # pylint: disable=g-import-not-at-top

    return simpsons_faces_tfds.make_source(
        data.image_size, data_dir=data.tfds_data_dir or None,
        manual_dir=data.tfds_manual_dir or None, min_images=min_images)

  raise ConfigError(f"Invalid config value data.source={data.source!r}")


def check_folders(config: ml_collections.ConfigDict) -> None:
  """Runs `folder.check_folder` on the folder of every "folder" source in the config.

  These are data.dir and, in two-domain configs, data_b.dir. For a conditional model it also
  checks that data.dir has model.num_classes class subfolders. It imports neither JAX nor
  TensorFlow, so `jaxgan.main` calls it before starting them.
  """
  from jaxgan.data import folder  # pylint: disable=g-import-not-at-top
  from jaxgan.data import labeled  # pylint: disable=g-import-not-at-top

  for key in ("data", "data_b"):
    data = config.get(key)
    if data is not None and data.get("source") == "folder" and data.get("dir"):
      folder.check_folder(data.dir)

  # A conditional model (BigGAN-lite with model.num_classes > 0) reads one subfolder per class.
  num_classes = (config.get("model") or {}).get("num_classes", 0)
  if num_classes and config.data.get("source") == "folder" and config.data.get("dir"):
    labeled.check_num_classes(config.data.dir, num_classes)


def folder_exclude_ids(data: ml_collections.ConfigDict) -> list[str]:
  """Returns the file ids that the "folder" source leaves out: data.exclude_ids, plus the known
  Simpsons Faces non-faces when data.exclude_known_non_faces is set."""
  exclude_ids = [i.strip() for i in str(data.exclude_ids).split(",") if i.strip()]
  if data.exclude_known_non_faces:
    from jaxgan.data import simpsons_faces_tfds  # pylint: disable=g-import-not-at-top

    exclude_ids += [str(i) for i in sorted(simpsons_faces_tfds.NON_FACE_IDS)]
  return exclude_ids


def epoch_order(seed: int, epoch: int, num_images: int) -> np.ndarray:
  """Returns the permutation of image indices used in `epoch` (0-based)."""
  return np.random.default_rng([seed, epoch]).permutation(num_images)


@dataclasses.dataclass(frozen=True)
class Sharding:
  """Position of this process among all processes, which selects its part of each global batch."""

  process_index: int = 0
  process_count: int = 1


def local_index_batches(
    order: np.ndarray,
    num_batches: int,
    global_batch_size: int,
    *,
    start_batch: int = 0,
    sharding: Sharding = Sharding(),
) -> np.ndarray:
  """Returns this process's columns of batches [start_batch, num_batches) of `order`.

  The result is an int array [num_batches - start_batch, global_batch_size / process_count].
  """
  if global_batch_size % sharding.process_count:
    raise ConfigError(
        f"Invalid config value data.batch_size={global_batch_size}: it must be divisible by the "
        f"number of processes ({sharding.process_count}).")
  local_batch_size = global_batch_size // sharding.process_count
  columns = slice(
      sharding.process_index * local_batch_size, (sharding.process_index + 1) * local_batch_size)
  order = order[: num_batches * global_batch_size]
  return order.reshape(num_batches, global_batch_size)[start_batch:, columns]


def make_epoch_dataset(
    source: source_lib.ImageSource,
    *,
    seed: int,
    epoch: int,
    global_batch_size: int,
    start_batch: int = 0,
    sharding: Sharding = Sharding(),
    prefetch_batches: int = 2,
    labels: np.ndarray | None = None,
):
  """Returns a tf.data.Dataset of this process's part of every batch of `epoch` from `start_batch`.

  Elements are {"image": float32 [B / process_count, size, size, 3] in [-1, 1]}, plus
  "label": int32 [B / process_count] when `labels` (int [num_images], the label of each image of
  the source) is given. The last incomplete batch of the epoch is dropped.
  """
  tf = tf_setup.import_tensorflow()
  num_batches = source.num_images // global_batch_size
  order = epoch_order(seed, epoch, source.num_images)
  index_batches = local_index_batches(
      order, num_batches, global_batch_size, start_batch=start_batch, sharding=sharding)
  local_batch_size = index_batches.shape[1]

  size = source.image_size

  read = recording_read(source.read)

  if labels is not None:
    labels = np.asarray(labels, np.int32)
    if labels.shape != (source.num_images,):
      raise ValueError(f"expected {source.num_images} labels, got shape {labels.shape}")

  def load(indices):
    images = tf.numpy_function(read, [indices], tf.uint8, stateful=False)
    images = tf.ensure_shape(images, [local_batch_size, size, size, 3])
    element = {"image": tf.cast(images, tf.float32) / 127.5 - 1.0}
    if labels is not None:
      element["label"] = tf.gather(tf.constant(labels), indices)
    return element

  dataset = tf.data.Dataset.from_tensor_slices(index_batches.astype(np.int64))
  dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(prefetch_batches)


def iterate_epoch(dataset) -> Iterator[dict[str, np.ndarray]]:
  """Yields the dataset's elements as NumPy arrays.

  Raises:
    JaxganError: the error that a `recording_read` raised inside tf.data, such as a DataError
      for an image file that cannot be decoded, in place of TensorFlow's OpError around it.
  """
  tf = tf_setup.import_tensorflow()
  with _read_errors_lock:
    _read_errors.clear()
  try:
    for element in dataset.as_numpy_iterator():
      yield element
  except tf.errors.OpError:
    with _read_errors_lock:
      first = _read_errors[0] if _read_errors else None
      _read_errors.clear()
    if first is None:
      raise
    raise first from None


def steps_per_epoch(num_images: int, global_batch_size: int) -> int:
  """Returns the number of full global batches in an epoch."""
  steps = num_images // global_batch_size
  if steps == 0:
    raise ConfigError(
        f"Invalid config value data.batch_size={global_batch_size}: the data source has only "
        f"{num_images} images, fewer than one batch. Lower --config.data.batch_size or add images.")
  logging.log_first_n(logging.INFO, "%s", 1, describe_epoch(num_images, global_batch_size))
  return steps


def describe_epoch(num_images: int, global_batch_size: int) -> str:
  """Returns how many full batches an epoch makes and how many images the dropped rest leaves out."""
  steps = num_images // global_batch_size
  unused = num_images - steps * global_batch_size
  batches = "batch" if steps == 1 else "batches"
  text = f"{num_images} images make {steps} {batches} of {global_batch_size} per epoch"
  if unused:
    text += (f"; the last incomplete batch is dropped, so {unused} image(s) go unused in each "
             "epoch (a different set each epoch, since the order is shuffled)")
  return text
