"""The class_accuracy metric: how often a conditional generator draws the requested class.

A small CNN (classifier.py) is trained on the run's labelled real images and tested on held-out
real images, either a separate folder of class subfolders or a stratified fraction of the reals
drawn with the seed. Each generated image is then classified, and its accuracy is the fraction
classified as the class it was conditioned on. Chance level is 1 / num_classes. The held-out
real accuracy is the reference: fakes as recognisable as real images score about that value,
and exaggerated, prototypical fakes can score above it.

The trained classifier is cached as <cache folder>/class_classifier_<key>.npz with a .json of
its settings, data and held-out accuracy. The key hashes the classifier settings and the
fingerprints of the training and held-out images, so EMA and raw weights, other steps or other
truncations reuse one classifier, and a change to any of those inputs trains a new one.
"""

import hashlib
import json
import os
from typing import Any

import numpy as np
from absl import logging

from jaxgan.evaluation import classifier as classifier_lib
from jaxgan.evaluation import evaluator
from jaxgan.evaluation import metric_names

METRIC = metric_names.CLASS_ACCURACY
DEFAULT_HOLDOUT_FRACTION = 0.1


def holdout_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
  """Splits image indices into (train, held out), taking `fraction` of each class with `seed`.

  Each class with at least 2 images gives at least one held-out image and keeps at least one
  for training. Both index arrays are sorted.
  """
  rng = np.random.default_rng(seed)
  train, held_out = [], []
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    count = int(round(fraction * len(members)))
    if len(members) >= 2:
      count = min(max(count, 1), len(members) - 1)
    held_out.append(members[:count])
    train.append(members[count:])
  return np.sort(np.concatenate(train)), np.sort(np.concatenate(held_out))


def _subset(reals: evaluator.RealImages, indices: np.ndarray, part: str) -> evaluator.RealImages:
  fingerprint = hashlib.sha256(
      f"{reals.fingerprint}/{part}/{np.asarray(indices).tolist()}".encode()).hexdigest()
  return evaluator.RealImages(
      images=reals.images[indices], source_name=f"{reals.source_name}, {part}",
      fingerprint=fingerprint, labels=reals.labels[indices], class_names=reals.class_names)


def split_reals(
    reals: evaluator.RealImages,
    test_reals: evaluator.RealImages | None,
    holdout_fraction: float,
    seed: int,
) -> tuple[evaluator.RealImages, evaluator.RealImages]:
  """Returns the (training, held-out) real images of the classifier.

  With `test_reals` every real image trains the classifier. Without it a stratified
  `holdout_fraction` of the reals, drawn with `seed`, is held out.

  Raises:
    EvaluationError: when the reals have no labels, or `test_reals` has other class names.
  """
  if reals.labels is None:
    raise metric_names.EvaluationError(
        f"{METRIC} needs labelled real images, but {reals.source_name} has no class labels. "
        "Pass --real with one subfolder per class.")
  if test_reals is not None:
    if test_reals.class_names != reals.class_names:
      raise metric_names.EvaluationError(
          f"The held-out classes of {test_reals.source_name} are "
          f"{','.join(test_reals.class_names)}, but the real images have "
          f"{','.join(reals.class_names)}. Pass a --class_test folder with the same class "
          "subfolders.")
    return reals, test_reals
  train, held_out = holdout_indices(reals.labels, holdout_fraction, seed)
  return (_subset(reals, train, f"{1 - holdout_fraction:g} for training (seed {seed})"),
          _subset(reals, held_out, f"{holdout_fraction:g} held out (seed {seed})"))


def _per_class_list(class_names: tuple[str, ...], accuracies: np.ndarray,
                    counts: np.ndarray) -> list[dict[str, Any]]:
  return [{"class": name, "label": label, "accuracy": _float_or_none(accuracies[label]),
           "num_images": int(counts[label])} for label, name in enumerate(class_names)]


def _float_or_none(value: float) -> float | None:
  return None if np.isnan(value) else float(value)


def load_or_train(
    train_reals: evaluator.RealImages,
    test_reals: evaluator.RealImages,
    num_classes: int,
    settings: classifier_lib.ClassifierSettings,
    cache_dir: str,
) -> tuple[classifier_lib.Classifier, dict[str, Any], bool]:
  """Returns (classifier, its description, whether it was read from the cache).

  The description is the cache's JSON: settings, data sources and fingerprints, image counts,
  held-out accuracy overall and per class, and the parameters' SHA-256.
  """
  if len(train_reals.class_names) != num_classes:
    raise metric_names.EvaluationError(
        f"The real images have {len(train_reals.class_names)} classes "
        f"({','.join(train_reals.class_names)}), but the run has model.num_classes="
        f"{num_classes}. Pass --real with one subfolder per class of the run.")
  image_size = int(train_reals.images.shape[1])
  key_fields = {"settings": settings.to_dict(), "train": train_reals.fingerprint,
                "test": test_reals.fingerprint, "class_names": list(train_reals.class_names),
                "num_classes": num_classes, "image_size": image_size}
  key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
  base = os.path.join(cache_dir, f"class_classifier_{key}")
  # The JSON is written last, so its presence means the .npz is complete.
  if os.path.isfile(base + ".json") and os.path.isfile(base + ".npz"):
    with open(base + ".json") as f:
      description = json.load(f)
    logging.info("Reusing the cached classifier %s.npz (held-out real accuracy %.4f).", base,
                 description["real_accuracy"])
    return (classifier_lib.load(base + ".npz", num_classes, image_size, settings), description,
            True)

  logging.info("Training the class_accuracy classifier on %d images (%s); held out: %d images "
               "(%s).", len(train_reals.images), train_reals.source_name,
               len(test_reals.images), test_reals.source_name)
  classifier = classifier_lib.train(train_reals.images, train_reals.labels, num_classes,
                                    settings)
  accuracy, per_class, confusion = classifier_lib.accuracy_by_class(
      test_reals.labels, classifier.predict(test_reals.images), num_classes)
  description = {
      **key_fields, "key": key, "path": base + ".npz",
      "train_source": train_reals.source_name, "test_source": test_reals.source_name,
      "num_train": len(train_reals.images), "num_test": len(test_reals.images),
      "real_accuracy": accuracy,
      "real_per_class": _per_class_list(train_reals.class_names, per_class, confusion.sum(1)),
      "real_confusion": confusion.tolist(),
      "parameters_sha256": classifier_lib.parameters_sha256(classifier),
  }
  os.makedirs(cache_dir, exist_ok=True)
  classifier_lib.save(classifier, base + ".npz")
  classifier_lib.write_json(description, base + ".json")
  logging.info("Saved the classifier to %s.npz: held-out real accuracy %.4f.", base, accuracy)
  return classifier, description, False


def make_record(
    classifier: classifier_lib.Classifier,
    description: dict[str, Any],
    fakes: np.ndarray,
    fake_labels: np.ndarray,
    base_settings: dict[str, Any],
) -> dict[str, Any]:
  """Classifies uint8 fakes [N, S, S, 3] drawn for `fake_labels` into a result record.

  Its value is the fraction of fakes classified as their requested class. The record's
  "per_class" lists, for each class, that fraction ("value") and the held-out real accuracy.
  Its details hold both confusion matrices, rows being the requested or true class and columns
  the predicted one.
  """
  from jaxgan.evaluation import results  # pylint: disable=g-import-not-at-top

  class_names = tuple(description["class_names"])
  num_classes = description["num_classes"]
  fake_labels = np.asarray(fake_labels)
  accuracy, per_class, confusion = classifier_lib.accuracy_by_class(
      fake_labels, classifier.predict(fakes), num_classes)
  counts = confusion.sum(axis=1)
  settings = {
      **base_settings,
      "num_real": description["num_test"],
      "num_fake": int(len(fakes)),
      "resolution": int(fakes.shape[1]),
      "resize_method": "none (model resolution)",
      "real_preprocessing": evaluator.REAL_PREPROCESSING,
      "fake_quantization": evaluator.FAKE_QUANTIZATION,
      "weights_sha256": None,
      "real_fingerprint": description["train"],
      "real_source": description["train_source"],
      # Results from different classifiers are not comparable, so results.compare checks these.
      "metric_parameters": {
          "classifier": description["settings"],
          "classifier_key": description["key"],
          "classifier_sha256": description["parameters_sha256"],
          "num_train": description["num_train"],
          "test_source": description["test_source"],
          "test_fingerprint": description["test"],
      },
  }
  details = {
      "chance": 1.0 / num_classes,
      "class_names": list(class_names),
      "per_class": _per_class_list(class_names, per_class, counts),
      "confusion": confusion.tolist(),
      "real_accuracy": description["real_accuracy"],
      "real_per_class": description["real_per_class"],
      "real_confusion": description["real_confusion"],
      "classifier_path": description["path"],
  }
  record = results.make_record(METRIC, accuracy, settings, details)
  record["per_class"] = [
      {"class": name, "label": label, "value": _float_or_none(per_class[label]),
       "num_fake": int(counts[label]),
       "real_accuracy": description["real_per_class"][label]["accuracy"],
       "num_real": description["real_per_class"][label]["num_images"]}
      for label, name in enumerate(class_names)]
  return record


def summary_line(record: dict[str, Any]) -> str:
  """Returns the log line of a class_accuracy result, with chance level and real accuracy."""
  details = record["details"]
  return (f"{METRIC} = {record['value']:.4f} of generated images classified as their requested "
          f"class (chance {details['chance']:.4f} for {len(details['class_names'])} classes, "
          f"held-out real images {details['real_accuracy']:.4f})")
