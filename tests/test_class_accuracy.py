"""Tests of the class_accuracy metric: the classifier, its cache, and jaxgan.evaluate's use of it."""

import json
import os
import sys

import numpy as np
import pytest

from jaxgan.evaluation import class_accuracy
from jaxgan.evaluation import classifier as classifier_lib
from jaxgan.evaluation import evaluator
from tests.test_evaluate_biggan import REPO
from tests.test_evaluate_biggan import conditional_run  # pylint: disable=unused-import
from tests.test_evaluate_biggan import run_evaluate

_COLORS = np.array([[220, 30, 30], [30, 200, 40], [40, 40, 210], [230, 220, 40]], np.uint8)
_BASE_SETTINGS = {"seed": 0, "weights": "ema", "ema": True, "truncation": None,
                  "batchnorm_mode": "inference (running statistics)"}
_FAST = classifier_lib.ClassifierSettings(widths=(8, 8), epochs=15, batch_size=16,
                                          learning_rate=1e-2)


def solid_images(labels: np.ndarray, size: int = 8, noise: int = 25, seed: int = 0) -> np.ndarray:
  """Returns uint8 images [N, size, size, 3], each the colour of its class plus pixel noise."""
  rng = np.random.default_rng(seed)
  base = _COLORS[labels].astype(np.int32)[:, None, None, :]
  pixels = base + rng.integers(-noise, noise + 1, (len(labels), size, size, 3))
  return np.clip(pixels, 0, 255).astype(np.uint8)


def labelled_reals(per_class: int, seed: int) -> evaluator.RealImages:
  labels = np.repeat(np.arange(len(_COLORS)), per_class).astype(np.int32)
  return evaluator.RealImages(
      images=solid_images(labels, seed=seed), source_name=f"solid colours {seed}",
      fingerprint=f"solid-{seed}-{per_class}", labels=labels,
      class_names=("red", "green", "blue", "yellow"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A classifier trained on solid colours, with its description and cache folder."""
  cache = tmp_path_factory.mktemp("classifier")
  train, test = labelled_reals(20, seed=1), labelled_reals(5, seed=2)
  model, description, reused = class_accuracy.load_or_train(train, test, 4, _FAST, str(cache))
  assert not reused
  return model, description, cache


def test_classifier_learns_solid_colours(trained):
  model, description, _ = trained
  assert description["real_accuracy"] >= 0.95
  assert [entry["num_images"] for entry in description["real_per_class"]] == [5, 5, 5, 5]
  labels = np.arange(40) % 4
  np.testing.assert_array_equal(model.predict(solid_images(labels, seed=3)), labels)


def test_cache_reused_without_training(trained, monkeypatch):
  model, description, cache = trained

  def fail_training(*args, **kwargs):
    raise AssertionError("the cached classifier was not reused")

  monkeypatch.setattr(classifier_lib, "train", fail_training)
  train, test = labelled_reals(20, seed=1), labelled_reals(5, seed=2)
  reused_model, reused_description, reused = class_accuracy.load_or_train(
      train, test, 4, _FAST, str(cache))
  assert reused
  assert reused_description == description
  images = solid_images(np.arange(12) % 4, seed=4)
  np.testing.assert_array_equal(reused_model.predict(images), model.predict(images))
  assert classifier_lib.parameters_sha256(reused_model) == description["parameters_sha256"]


def test_cache_key_changes_with_data(trained):
  _, description, cache = trained
  other_test = labelled_reals(6, seed=2)
  _, other, reused = class_accuracy.load_or_train(
      labelled_reals(20, seed=1), other_test, 4, _FAST, str(cache))
  assert not reused
  assert other["key"] != description["key"]


def test_label_following_fakes_score_one(trained):
  model, description, _ = trained
  requested = np.arange(40) % 4
  record = class_accuracy.make_record(model, description, solid_images(requested, seed=5),
                                      requested, _BASE_SETTINGS)
  assert record["metric"] == "class_accuracy"
  assert record["value"] == 1.0
  assert [entry["value"] for entry in record["per_class"]] == [1.0, 1.0, 1.0, 1.0]
  np.testing.assert_array_equal(record["details"]["confusion"], np.diag([10, 10, 10, 10]))
  assert record["details"]["chance"] == 0.25


def test_label_ignoring_fakes_score_chance(trained):
  model, description, _ = trained
  requested = np.arange(40) % 4
  # A generator that ignores the label: every image is green, whatever class was requested.
  fakes = solid_images(np.full(40, 1), seed=6)
  record = class_accuracy.make_record(model, description, fakes, requested, _BASE_SETTINGS)
  assert record["value"] == pytest.approx(0.25)
  assert [entry["value"] for entry in record["per_class"]] == [0.0, 1.0, 0.0, 0.0]
  confusion = np.asarray(record["details"]["confusion"])
  np.testing.assert_array_equal(confusion[:, 1], [10, 10, 10, 10])
  assert confusion.sum() == 40


def test_holdout_stratified_and_seeded():
  labels = np.repeat(np.arange(3), [10, 20, 2])
  train, held_out = class_accuracy.holdout_indices(labels, 0.1, seed=0)
  assert np.bincount(labels[held_out]).tolist() == [1, 2, 1]
  assert np.bincount(labels[train]).tolist() == [9, 18, 1]
  assert not set(train) & set(held_out)
  again, _ = class_accuracy.holdout_indices(labels, 0.1, seed=0)
  np.testing.assert_array_equal(train, again)
  other, _ = class_accuracy.holdout_indices(labels, 0.1, seed=1)
  assert not np.array_equal(train, other)


def test_evaluate_writes_class_accuracy(conditional_run, tmp_path):
  out = tmp_path / "eval"
  for weights in ("ema", "raw"):
    result = run_evaluate(f"--workdir={conditional_run}", f"--weights={weights}",
                          "--metrics=swd,class_accuracy", "--num=12", "--per_class",
                          "--classifier_epochs=2", "--class_holdout=0.34", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert "chance 0.3333 for 3 classes" in result.stdout
  classifiers = sorted(path.name for path in out.glob("class_classifier_*"))
  assert len(classifiers) == 2  # one .npz and its .json, shared by the EMA and raw results

  record = json.loads((out / "class_accuracy_step4_ema_trunc1.json").read_text())
  assert 0.0 <= record["value"] <= 1.0
  settings = record["settings"]
  assert settings["weights"] == "ema"
  assert settings["truncation"] == 1.0
  assert settings["step"] == 4
  assert settings["seed"] == 0
  assert settings["num_fake"] == 12
  assert settings["num_real"] == 6  # 2 of the 6 images of each class held out
  assert settings["metric_parameters"]["num_train"] == 12
  assert settings["metric_parameters"]["classifier"]["epochs"] == 2
  details = record["details"]
  assert details["class_names"] == ["apple", "kiwi", "plum"]
  assert details["chance"] == pytest.approx(1 / 3)
  assert np.asarray(details["confusion"]).sum() == 12
  assert np.asarray(details["real_confusion"]).sum() == 6
  assert [entry["num_fake"] for entry in record["per_class"]] == [4, 4, 4]
  assert [entry["num_real"] for entry in record["per_class"]] == [2, 2, 2]
  assert all("real_accuracy" in entry for entry in record["per_class"])

  raw = json.loads((out / "class_accuracy_step4_raw_trunc1.json").read_text())
  assert raw["settings"]["weights"] == "raw"
  assert raw["settings"]["metric_parameters"] == settings["metric_parameters"]
  swd = json.loads((out / "swd_step4_ema_trunc1.json").read_text())
  assert len(swd["per_class"]) == 3


def test_class_test_folder_used(conditional_run, tmp_path):
  data = json.loads((conditional_run / "config.json").read_text())["data"]["dir"]
  result = run_evaluate(f"--workdir={conditional_run}", "--metrics=class_accuracy", "--num=6",
                        "--classifier_epochs=1", f"--class_test={data}",
                        f"--classifier_dir={tmp_path / 'classifiers'}", f"--out={tmp_path}")
  assert result.returncode == 0, result.stderr
  record = json.loads((tmp_path / "class_accuracy_step4_ema_trunc1.json").read_text())
  assert record["settings"]["num_real"] == 18
  assert record["settings"]["metric_parameters"]["num_train"] == 18
  assert len(list((tmp_path / "classifiers").glob("class_classifier_*.npz"))) == 1


def test_unconditional_run_rejected(tmp_path):
  sys.path.insert(0, str(REPO))
  from configs import default as default_config  # pylint: disable=g-import-not-at-top

  (tmp_path / "config.json").write_text(default_config.get_config("tiny").to_json())
  result = run_evaluate(f"--workdir={tmp_path}", "--metrics=swd,class_accuracy")
  assert result.returncode == 2
  assert "class_accuracy needs a conditional run" in result.stderr
  assert "Traceback" not in result.stderr
  assert result.stderr.count("\n") == 1
  assert not os.path.exists(tmp_path / "eval")
