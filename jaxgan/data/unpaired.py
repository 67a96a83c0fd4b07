"""Two unpaired image domains (A and B) for image-to-image translation such as CycleGAN.

Domain A is described by `config.data` and domain B by `config.data_b`, which overrides the
per-domain keys of `config.data` (source, dir, exclude_ids, ..., min_age, max_images,
channel_order). Both domains share image_size, batch_size and the decoding settings.

An epoch has max(num_a, num_b) // batch_size batches, so the larger domain is seen once per epoch
and the smaller one is repeated, as in the CycleGAN authors' data loader. Each domain follows its
own order: a concatenation of permutations drawn from (seed, epoch, domain, repeat), so the two
orders are independent, and a resumed run can rebuild them exactly.
"""

import dataclasses
from pathlib import Path
from typing import Iterator

import ml_collections
import numpy as np
from absl import logging

from jaxgan import config_lib
from jaxgan.data import folder
from jaxgan.data import images
from jaxgan.data import pipeline
from jaxgan.data import source as source_lib
from jaxgan.data import tf_setup
from jaxgan.errors import ConfigError
from jaxgan.errors import DataError

DOMAINS = ("a", "b")
# Keys of config.data that config.data_b overrides for domain B.
DOMAIN_KEYS = ("source", "dir", "exclude_ids", "exclude_known_non_faces", "num_generated",
               "tfds_data_dir", "tfds_manual_dir", "min_age", "max_images", "channel_order")
CHANNEL_ORDERS = ("rgb", "bgr", "gbr", "brg")

# Stream folded into the seed of the random subset (max_images) and of the grid's fixed images.
_SUBSET_STREAM, _FIXED_STREAM = 11, 12


@dataclasses.dataclass(frozen=True)
class UnpairedSource:
  """Both domains, and the numbers the trainer reads: one epoch has `num_images` pairs."""

  a: source_lib.ImageSource
  b: source_lib.ImageSource

  @property
  def num_images(self) -> int:
    return max(self.a.num_images, self.b.num_images)

  @property
  def image_size(self) -> int:
    return self.a.image_size

  @property
  def name(self) -> str:
    return f"A: {self.a.name}; B: {self.b.name}"


def domain_config(config: ml_collections.ConfigDict, domain: str) -> ml_collections.ConfigDict:
  """Returns a copy of `config` whose `data` describes one domain, for `pipeline.make_source`.

  For domain B, the generated source draws from seed + 1, so that the two domains contain
  different faces when both are generated.
  """
  if domain not in DOMAINS:
    raise ValueError(f"unknown domain {domain!r}; expected 'a' or 'b'")
  copy = ml_collections.ConfigDict(config.to_dict())
  if domain == "b":
    for key in DOMAIN_KEYS:
      copy.data[key] = config.data_b[key]
    copy.seed = config.seed + 1
  return copy


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the per-domain keys of both domains (config_lib.validate_common checks domain A's
  source and folder)."""
  for domain in DOMAINS:
    data_key = "data" if domain == "a" else "data_b"
    for key in DOMAIN_KEYS:
      config_lib.get(config, f"{data_key}.{key}")
    config_lib.check_choice(config, f"{data_key}.source", ("folder", "tfds", "generated"))
    config_lib.check_number(config, f"{data_key}.min_age", low=0, integer=True)
    config_lib.check_number(config, f"{data_key}.max_images", low=0, integer=True)
    config_lib.check_number(config, f"{data_key}.num_generated", low=1, integer=True)
    config_lib.check_choice(config, f"{data_key}.channel_order", CHANNEL_ORDERS)
    data = config[data_key]
    if data.source == "folder" and not data.dir:
      raise ConfigError(
          f"Missing config value {data_key}.dir: the 'folder' source of domain {domain.upper()} "
          f"needs a folder of PNG or JPEG images. Pass --config.{data_key}.dir=<folder>.")
    config_lib.check_source_reads_dir(config, data_key)
    if data.min_age and data.source != "folder":
      raise ConfigError(
          f"Invalid config value {data_key}.min_age={data.min_age}: the age filter reads "
          "UTKFace file names, so it needs the 'folder' source. Set it to 0 or use "
          f"--config.{data_key}.source=folder.")


def parse_utkface_age(path: str | Path) -> int | None:
  """Returns the age in a UTKFace file name ("26_1_2_2017...jpg.chip.jpg" -> 26), or None."""
  field = Path(path).name.split("_", 1)[0]
  if not field.isdigit():
    return None
  return int(field)


def select_paths(paths: list[Path], *, min_age: int, max_images: int, seed: int,
                 domain: str) -> list[Path]:
  """Keeps the files whose UTKFace age is >= min_age (when min_age > 0), then a random subset of
  at most max_images files (when max_images > 0), chosen from (seed, domain) and kept in order.

  Files whose name has no age are skipped, and counted in a warning.
  """
  kept = list(paths)
  if min_age > 0:
    ages = [parse_utkface_age(path) for path in kept]
    unparsed = [path for path, age in zip(kept, ages) if age is None]
    if unparsed:
      logging.warning(
          "Skipped %d of %d files of domain %s whose names do not start with an age and '_' "
          "(UTKFace naming), for example %s.", len(unparsed), len(kept), domain.upper(),
          unparsed[0].name)
    adults = [path for path, age in zip(kept, ages) if age is not None and age >= min_age]
    logging.info("Domain %s: %d files with age >= %d, %d younger.", domain.upper(), len(adults),
                 min_age, len(kept) - len(unparsed) - len(adults))
    kept = adults
  if 0 < max_images < len(kept):
    rng = np.random.default_rng([seed, _SUBSET_STREAM, DOMAINS.index(domain)])
    chosen = np.sort(rng.choice(len(kept), max_images, replace=False))
    logging.info("Domain %s: using a random subset of %d of %d files.", domain.upper(),
                 max_images, len(kept))
    kept = [kept[index] for index in chosen]
  return kept


def _permute_channels(order: str, pixels: np.ndarray) -> np.ndarray:
  if order == "rgb":
    return pixels
  return pixels[..., ["rgb".index(channel) for channel in order]]


def _with_channel_order(source: source_lib.ImageSource, order: str) -> source_lib.ImageSource:
  if order == "rgb":
    return source

  def read(indices: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(_permute_channels(order, source.read(indices)))

  return dataclasses.replace(source, name=f"{source.name}, channels as {order}", read=read)


def _subset(source: source_lib.ImageSource, max_images: int, seed: int,
            domain: str) -> source_lib.ImageSource:
  if not 0 < max_images < source.num_images:
    return source
  rng = np.random.default_rng([seed, _SUBSET_STREAM, DOMAINS.index(domain)])
  chosen = np.sort(rng.choice(source.num_images, max_images, replace=False))

  def read(indices: np.ndarray) -> np.ndarray:
    return source.read(chosen[np.asarray(indices)])

  return source_lib.ImageSource(
      name=f"{source.name}, random subset of {max_images}", num_images=max_images,
      image_size=source.image_size, read=read, ids=tuple(source.ids[i] for i in chosen))


def _folder_paths(config: ml_collections.ConfigDict, domain: str) -> list[Path]:
  data = domain_config(config, domain).data
  paths, _ = images.list_image_files(data.dir, pipeline.folder_exclude_ids(data))
  return select_paths(paths, min_age=data.min_age, max_images=data.max_images,
                      seed=config.seed, domain=domain)


def make_domain_source(config: ml_collections.ConfigDict, domain: str) -> source_lib.ImageSource:
  """Creates the image source of one domain, with its filters applied."""
  domain_settings = domain_config(config, domain)
  data = domain_settings.data
  if data.source == "folder" and (data.min_age or data.max_images):

    def select(paths: list[Path]) -> list[Path]:
      return select_paths(paths, min_age=data.min_age, max_images=data.max_images,
                          seed=config.seed, domain=domain)

    source = folder.make_source(
        data.dir, data.image_size, exclude_ids=pipeline.folder_exclude_ids(data),
        min_images=data.batch_size, cache_max_bytes=int(data.cache_max_gib * (1 << 30)),
        num_threads=data.num_threads, select=select)
  else:
    source = _subset(pipeline.make_source(domain_settings), data.max_images, config.seed, domain)
  return _with_channel_order(source, data.channel_order)


def make_source(config: ml_collections.ConfigDict) -> UnpairedSource:
  """Creates both domains' sources."""
  return UnpairedSource(a=make_domain_source(config, "a"), b=make_domain_source(config, "b"))


def domain_order(seed: int, epoch: int, domain: str, num_images: int, length: int) -> np.ndarray:
  """Returns `length` indices: permutations of range(num_images) from (seed, epoch, domain, k),
  k = 0, 1, ..., concatenated."""
  repeats = -(-length // num_images)
  parts = [np.random.default_rng([seed, epoch, DOMAINS.index(domain), k]).permutation(num_images)
           for k in range(repeats)]
  return np.concatenate(parts)[:length]


def epoch_batches(
    source: UnpairedSource,
    *,
    seed: int,
    epoch: int,
    global_batch_size: int,
    start_batch: int = 0,
    sharding: pipeline.Sharding = pipeline.Sharding(),
    prefetch_batches: int = 2,
) -> Iterator[dict[str, np.ndarray]]:
  """Yields this process's part of each batch of `epoch` from `start_batch`.

  Elements are {"image_a": float32 [B / process_count, size, size, 3], "image_b": same} in
  [-1, 1]. The last incomplete batch of the epoch is dropped.
  """
  tf = tf_setup.import_tensorflow()
  num_batches = source.num_images // global_batch_size
  length = num_batches * global_batch_size
  index_batches = {
      domain: pipeline.local_index_batches(
          domain_order(seed, epoch, domain, getattr(source, domain).num_images, length),
          num_batches, global_batch_size, start_batch=start_batch, sharding=sharding)
      for domain in DOMAINS
  }
  local_batch_size = index_batches["a"].shape[1]
  size = source.image_size

  def load(indices_a, indices_b):
    batch = {}
    for domain, indices in (("a", indices_a), ("b", indices_b)):
      read = pipeline.recording_read(getattr(source, domain).read)
      pixels = tf.numpy_function(read, [indices], tf.uint8, stateful=False)
      pixels = tf.ensure_shape(pixels, [local_batch_size, size, size, 3])
      batch[f"image_{domain}"] = tf.cast(pixels, tf.float32) / 127.5 - 1.0
    return batch

  dataset = tf.data.Dataset.from_tensor_slices(
      (index_batches["a"].astype(np.int64), index_batches["b"].astype(np.int64)))
  dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return pipeline.iterate_epoch(dataset.prefetch(prefetch_batches))


def fixed_images(config: ml_collections.ConfigDict, domain: str, num: int) -> np.ndarray:
  """Returns `num` images of one domain chosen from config.seed, float32 [num, s, s, 3] in
  [-1, 1], for sample grids.

  A folder domain reads only the chosen files, so the grid does not decode the whole folder
  again. Other sources are built in full.
  """
  data = domain_config(config, domain).data
  rng = np.random.default_rng([config.seed, _FIXED_STREAM, DOMAINS.index(domain)])
  if data.source == "folder":
    paths = _folder_paths(config, domain)
    chosen = rng.choice(len(paths), min(num, len(paths)), replace=False)
    try:
      pixels = np.stack([images.read_image(paths[i], data.image_size) for i in chosen])
    except images.UnreadableImageError as error:
      raise DataError(
          f"Image file {error.path} of the sample grid could not be read: {error.reason}. Remove "
          "or replace the file.") from error
    pixels = _permute_channels(data.channel_order, pixels)
  else:
    source = make_domain_source(config, domain)
    chosen = rng.choice(source.num_images, min(num, source.num_images), replace=False)
    pixels = source.read(np.sort(chosen))
  if len(pixels) < num:
    raise ConfigError(
        f"Domain {domain.upper()} has {len(pixels)} images, fewer than the {num} of the sample "
        "grid. Add images or lower --config.train.grid_columns.")
  return pixels.astype(np.float32) / 127.5 - 1.0
