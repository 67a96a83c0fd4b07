"""Computes the evaluation metrics of generated images against a set of real images.

Metrics: "swd" (multi-scale sliced Wasserstein distance, units of 1e-3), "diversity" (mean
pairwise distance of fakes over that of reals), "nn" (nearest training image distances), "fid"
and "kid" (Inception pool3 features). The first three need no network weights. Real files are
center-cropped and resized to the model's resolution with Pillow bilinear, as the training
pipeline's `images.read_image` does. Fakes are rounded to uint8, as when saved to PNG. For FID
and KID both are then resized to 299 (see inception.py).
"""

import dataclasses
import hashlib
import json
import os
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from jaxgan.data import images as images_lib
from jaxgan.data import labeled
from jaxgan.data import pipeline
from jaxgan.data import source as source_lib
from jaxgan.errors import DataError
from jaxgan.evaluation import diversity
from jaxgan.evaluation import feature_distances
from jaxgan.evaluation import inception
from jaxgan.evaluation import metric_names
from jaxgan.evaluation import nearest
from jaxgan.evaluation import swd

REAL_PREPROCESSING = "center crop, Pillow bilinear (antialiased) to the model resolution, uint8"
FAKE_QUANTIZATION = "uint8 (round((x + 1) * 127.5))"
CACHE_ENV_VARIABLE = "JAXGAN_CACHE_DIR"

# Defined in metric_names, which imports no JAX, for the config checks.
METRICS = metric_names.METRICS
INCEPTION_METRICS = metric_names.INCEPTION_METRICS
RANKING_METRICS = metric_names.RANKING_METRICS
EvaluationError = metric_names.EvaluationError
parse_metrics = metric_names.parse_metrics


@dataclasses.dataclass(frozen=True)
class RealImages:
  """Real images [N, S, S, 3] uint8, where they came from, and a fingerprint of that source.

  For a conditional run, `labels` (int32 [N]) are the class indices of the images and
  `class_names` the class folder names in label order. For other runs they are None and ().
  """

  images: np.ndarray
  source_name: str
  fingerprint: str
  labels: np.ndarray | None = None
  class_names: tuple[str, ...] = ()


def _is_conditional(config: ml_collections.ConfigDict) -> bool:
  return bool(config.model.get("num_classes", 0))


def _file_stats(directory: str, exclude_ids: list[str], prefix: str = "") -> list[list]:
  paths, _ = images_lib.list_image_files(directory, exclude_ids)
  stats = []
  for path in paths:
    status = path.stat()
    stats.append([prefix + path.name, status.st_size, status.st_mtime_ns])
  return stats


def _class_folder_stats(root: str) -> list[list]:
  stats = []
  for name in labeled.list_classes(root):
    stats += _file_stats(os.path.join(root, name), [], prefix=f"{name}/")
  return stats


def _exclude_ids(data: ml_collections.ConfigDict) -> list[str]:
  ids = [i.strip() for i in str(data.get("exclude_ids", "")).split(",") if i.strip()]
  if data.get("exclude_known_non_faces", False):
    from jaxgan.data import simpsons_faces_tfds  # pylint: disable=g-import-not-at-top

    ids += [str(i) for i in sorted(simpsons_faces_tfds.NON_FACE_IDS)]
  return ids


def data_fingerprint(config: ml_collections.ConfigDict, indices: np.ndarray) -> str:
  """Returns a SHA-256 of what decides the real pixels: files, selection, resolution, resizing.

  For the "folder" source the name, size and mtime of each file (in each class subfolder, for a
  conditional run) are read from disk, so a changed, added or removed file changes the
  fingerprint. Other sources use their config.
  """
  data = config.data
  if data.source == "folder" and _is_conditional(config):
    origin: Any = {"class_folders": os.path.abspath(data.dir),
                   "files": _class_folder_stats(data.dir)}
  elif data.source == "folder":
    origin = {"folder": os.path.abspath(data.dir),
              "files": _file_stats(data.dir, _exclude_ids(data))}
  else:
    origin = {"source": data.source, "seed": config.seed,
              "num_generated": data.get("num_generated"),
              "tfds_data_dir": data.get("tfds_data_dir")}
  description = {"origin": origin, "indices": np.asarray(indices).tolist(),
                 "resolution": data.image_size, "preprocessing": REAL_PREPROCESSING}
  return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def folder_config(config: ml_collections.ConfigDict, directory: str) -> ml_collections.ConfigDict:
  """Returns a copy of `config` whose data are all images of `directory`, at the same size.

  For a conditional run, `directory` must contain one subfolder per class of the run.
  """
  copy = ml_collections.ConfigDict(config.to_dict())
  copy.data.source = "folder"
  copy.data.dir = directory
  copy.data.exclude_ids = ""
  copy.data.exclude_known_non_faces = False
  return copy


def _make_labeled_source(config: ml_collections.ConfigDict) -> labeled.LabeledSource:
  """Reads the class folders of config.data.dir, raising DataError if their names differ from
  the run's data.class_names."""
  source = labeled.make_source(config.data.dir, config.data.image_size,
                               num_threads=config.data.get("num_threads", 0))
  expected = [name.strip() for name in str(config.data.get("class_names", "")).split(",")
              if name.strip()]
  if expected and list(source.class_names) != expected:
    raise DataError(
        f"The class folders of {config.data.dir} are {','.join(source.class_names)}, but the run "
        f"was trained on {','.join(expected)}. Pass a folder with one subfolder per class of the "
        "run, with the same names.")
  return source


def load_real_images(
    config: ml_collections.ConfigDict,
    max_images: int | None = None,
    seed: int = 0,
    source: source_lib.ImageSource | labeled.LabeledSource | None = None,
) -> RealImages:
  """Reads up to `max_images` real images of the config's data source, chosen with `seed`.

  The images are those of `source` when given (the trainer's), else of a source made from
  `config.data`; either way the fingerprint describes `config.data`. A conditional run
  (model.num_classes > 0) reads every class subfolder of data.dir, with its labels.

  Raises:
    DataError: for missing or unreadable images, or class folders that are not the run's.
  """
  if source is None and _is_conditional(config):
    source = _make_labeled_source(config)
  elif source is None:
    one_image = ml_collections.ConfigDict(config.to_dict())
    one_image.data.batch_size = 1
    source = pipeline.make_source(one_image)
  count = source.num_images if max_images is None else min(max_images, source.num_images)
  indices = np.sort(np.random.default_rng(seed).permutation(source.num_images)[:count])
  fingerprint = data_fingerprint(config, indices)
  if isinstance(source, labeled.LabeledSource):
    return RealImages(images=source.images.read(indices), source_name=source.name,
                      fingerprint=fingerprint, labels=source.labels[indices],
                      class_names=source.class_names)
  return RealImages(images=source.read(indices), source_name=source.name,
                    fingerprint=fingerprint)


def class_subset(reals: RealImages, label: int) -> RealImages:
  """Returns the real images of class `label`, with a fingerprint that names the class."""
  name = reals.class_names[label]
  keep = reals.labels == label
  fingerprint = hashlib.sha256(f"{reals.fingerprint}/{name}".encode()).hexdigest()
  return RealImages(images=reals.images[keep], source_name=f"{reals.source_name}, class {name}",
                    fingerprint=fingerprint, labels=reals.labels[keep],
                    class_names=reals.class_names)


def _cache_directory(cache_dir: str | None) -> str:
  if cache_dir:
    return cache_dir
  default = os.path.join(os.path.expanduser("~"), ".cache", "jaxgan")
  return os.path.join(os.environ.get(CACHE_ENV_VARIABLE, default), "reference_statistics")


def reference_features(
    reals: RealImages,
    extractor: inception.FeatureExtractor,
    weights_sha256: str,
    cache_dir: str | None = None,
) -> np.ndarray:
  """Returns the Inception features of `reals`, computed once and then read from a cache.

  The cache file `<cache_dir>/<key>.npz` contains the features, their mean and covariance. Its key
  hashes the real-data fingerprint, the count, the Inception input size and resize method, and
  the weights' SHA-256, so a change to any of them computes new features.
  """
  key_fields = {"data": reals.fingerprint, "count": len(reals.images),
                "input_size": extractor.input_size, "resize": inception.RESIZE_METHOD,
                "weights_sha256": weights_sha256}
  key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:32]
  path = os.path.join(_cache_directory(cache_dir), f"{key}.npz")
  if os.path.isfile(path):
    logging.info("Reading cached reference features %s", path)
    with np.load(path) as cached:
      return cached["features"]

  logging.info("Computing Inception features of %d real images (%s)", len(reals.images),
               reals.source_name)
  features = extractor(reals.images)
  statistics = feature_distances.gaussian_statistics(features)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  temporary = path + ".tmp.npz"
  np.savez(temporary, features=features, mu=statistics.mean, sigma=statistics.covariance,
           fields=json.dumps(key_fields))
  os.replace(temporary, path)
  return features


class Evaluator:
  """Computes the requested metrics of fake images against one fixed set of real images.

  Inception weights are loaded once, and only when FID or KID is requested.
  """

  def __init__(
      self,
      metrics: list[str],
      reals: RealImages,
      *,
      seed: int = 0,
      inception_weights: str | None = None,
      cache_dir: str | None = None,
      batch_size: int = 50,
      inception_input_size: int = inception.INPUT_SIZE,
      kid_subset_size: int = 1000,
      kid_subsets: int = 100,
      extractor: tuple[inception.FeatureExtractor, str] | None = None,
  ):
    """Creates the evaluator; `extractor` is a built (FeatureExtractor, weights SHA-256) to reuse
    in place of loading `inception_weights`."""
    self.metrics = metrics
    self.reals = reals
    self.seed = seed
    self.cache_dir = cache_dir
    self.swd_settings = swd.SWDSettings(seed=seed)
    self.kid_subset_size = kid_subset_size
    self.kid_subsets = kid_subsets
    self.extractor = None
    self.weights_sha256 = None
    if extractor is not None:
      self.extractor, self.weights_sha256 = extractor
    elif any(metric in INCEPTION_METRICS for metric in metrics):
      model, self.weights_sha256 = inception.load(inception_weights)
      self.extractor = inception.FeatureExtractor(model, batch_size, inception_input_size)

  def _resize_method(self, metric: str) -> str:
    if metric in INCEPTION_METRICS:
      size = self.extractor.input_size
      return inception.RESIZE_METHOD.replace("299x299", f"{size}x{size}")
    return "none (model resolution)"

  def _parameters(self, metric: str, count: int) -> dict[str, Any]:
    if metric == "swd":
      return dataclasses.asdict(self.swd_settings)
    if metric == "kid":
      return {"kernel": "(x.y / d + 1)^3", "subset_size": min(self.kid_subset_size, count),
              "num_subsets": self.kid_subsets}
    if metric == "diversity":
      return {"distance": "rms per value, [-1, 1] scale", "collapse_ratio":
              diversity.COLLAPSE_RATIO}
    if metric == "nn":
      return {"distance": "rms per value, [-1, 1] scale", "reference": "train_leave_one_out"}
    return {"features": "pool3", "dimension": inception.FEATURE_SIZE}

  def evaluate(self, fakes: np.ndarray, base_settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns one record per metric for uint8 fakes [N, S, S, 3] (see results.make_record).

    `base_settings` supplies the run's settings (step, seed, batchnorm_mode, ema, ...); the
    counts, resolution, preprocessing and metric parameters are added here.
    """
    from jaxgan.evaluation import results  # pylint: disable=g-import-not-at-top

    fakes = np.asarray(fakes)
    reals = self.reals.images
    if fakes.dtype != np.uint8 or fakes.shape[1:] != reals.shape[1:]:
      raise EvaluationError(
          f"Fake images {fakes.dtype} {fakes.shape[1:]} do not match the real images uint8 "
          f"{reals.shape[1:]}: evaluate at the run's data.image_size.")
    paired = min(len(fakes), len(reals))
    if paired < 2:
      raise EvaluationError(
          f"Too few images to evaluate: {len(fakes)} fake and {len(reals)} real; need at least 2 "
          "of each. Raise --num or add real images.")

    self._fake_features = None
    records = []
    for metric in self.metrics:
      value, details, num_real, num_fake = self._compute(metric, fakes, reals, paired)
      settings = {
          **base_settings,
          "num_real": num_real,
          "num_fake": num_fake,
          "resolution": int(reals.shape[1]),
          "resize_method": self._resize_method(metric),
          "real_preprocessing": REAL_PREPROCESSING,
          "fake_quantization": FAKE_QUANTIZATION,
          "weights_sha256": self.weights_sha256 if metric in INCEPTION_METRICS else None,
          "real_fingerprint": self.reals.fingerprint,
          "real_source": self.reals.source_name,
          "metric_parameters": self._parameters(metric, paired),
      }
      records.append(results.make_record(metric, value, settings, details))
    return records

  def evaluate_per_class(self, fakes: np.ndarray, fake_labels: np.ndarray,
                         base_settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Evaluates the fakes of each class against the reals of that class.

    Returns, per metric, one entry per class in label order: {"class", "label", "value",
    "num_real", "num_fake", "real_fingerprint"}. Raises EvaluationError when the reals have no
    labels or a class has fewer than 2 fake or real images.
    """
    if self.reals.labels is None:
      raise EvaluationError(
          "Per-class metrics need a conditional run: the real images have no class labels.")
    extractor = (self.extractor, self.weights_sha256) if self.extractor is not None else None
    per_class: dict[str, list[dict[str, Any]]] = {metric: [] for metric in self.metrics}
    for label, name in enumerate(self.reals.class_names):
      reals = class_subset(self.reals, label)
      evaluator = Evaluator(
          self.metrics, reals, seed=self.seed, cache_dir=self.cache_dir,
          kid_subset_size=self.kid_subset_size, kid_subsets=self.kid_subsets,
          extractor=extractor)
      try:
        records = evaluator.evaluate(fakes[np.asarray(fake_labels) == label], base_settings)
      except EvaluationError as error:
        raise EvaluationError(f"Class {name}: {error}") from error
      for record in records:
        per_class[record["metric"]].append({
            "class": name, "label": label, "value": record["value"],
            "num_real": record["settings"]["num_real"],
            "num_fake": record["settings"]["num_fake"],
            "real_fingerprint": reals.fingerprint})
    return per_class

  def _compute(self, metric, fakes, reals, paired):
    """Returns (value, details, num_real, num_fake) of one metric."""
    if metric == "swd":
      result = swd.sliced_wasserstein_distance(reals[:paired], fakes[:paired], self.swd_settings)
      details = {"resolutions": result.resolutions, "per_level": result.per_level}
      return result.mean, details, paired, paired
    scaled_fakes = fakes.astype(np.float32) / 127.5 - 1.0
    scaled_reals = reals.astype(np.float32) / 127.5 - 1.0
    if metric == "diversity":
      details = diversity.compare_with_real(scaled_fakes[:paired], scaled_reals[:paired])
      return details["ratio"], details, paired, paired
    if metric == "nn":
      details = nearest.memorization_report(scaled_fakes, scaled_reals)
      return details["median_ratio"], details, len(reals), len(fakes)

    real_features = reference_features(
        self.reals, self.extractor, self.weights_sha256, self.cache_dir)
    if self._fake_features is None:  # shared by FID and KID within one `evaluate` call
      self._fake_features = self.extractor(fakes)
    fake_features = self._fake_features
    if metric == "fid":
      value = feature_distances.frechet_distance(
          feature_distances.gaussian_statistics(real_features),
          feature_distances.gaussian_statistics(fake_features))
      return value, {}, len(reals), len(fakes)
    kid = feature_distances.kernel_distance(
        real_features, fake_features, subset_size=self.kid_subset_size,
        num_subsets=self.kid_subsets, seed=self.seed)
    return kid.mean, {"std": kid.std, "subset_size": kid.subset_size}, len(reals), len(fakes)
