"""Evaluates a trained run: python -m jaxgan.evaluate --workdir runs/x --metrics swd,diversity.

Draws --num images from a checkpoint's generator (inference-mode BatchNorm), compares them with
real images and writes one result per metric to <workdir>/eval/<metric>_step<S>.json (or
--out), with every setting that affects the number. Real images are the run's own training data
unless --real names a folder; for a conditional run, either is a folder of class subfolders.
For families with an EMA of G (BigGAN-lite), --weights and --truncation override the run's
sample.* values, and the file name gains _<weights> and, for a non-zero truncation, _trunc<T>. FID and KID need the Inception weights (--inception_weights or
$JAXGAN_INCEPTION_WEIGHTS); swd, diversity and nn need none. class_accuracy (conditional runs
only) trains a small classifier on the labelled reals, or reuses a cached one (see
jaxgan/evaluation/class_accuracy.py).

    python -m jaxgan.evaluate --workdir runs/x --metrics swd,diversity,nn,fid,kid --real data/
    python -m jaxgan.evaluate --workdir runs/biggan --weights raw --per_class
    python -m jaxgan.evaluate --workdir runs/biggan --metrics class_accuracy --class_test test/
    python -m jaxgan.evaluate --compare runs/a/eval/swd_step1000.json,runs/b/eval/swd_step1000.json

Exit status: 0 on success, 2 for invalid input or results with different settings.
"""

import json
import os

from absl import flags

from jaxgan.evaluation import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of the trained run to evaluate.")
_METRICS = flags.DEFINE_string(
    "metrics", "swd,diversity",
    "Comma-separated metrics: swd, diversity, nn, fid, kid, class_accuracy (conditional runs).")
_REAL = flags.DEFINE_string(
    "real", None,
    "Folder of real images: all PNG and JPEG files in it, or for a conditional run in its class "
    "subfolders. Default: the run's training data, with its exclusions.")
_NUM = flags.DEFINE_integer("num", 1000, "Number of generated images.")
_NUM_REAL = flags.DEFINE_integer(
    "num_real", None, "Maximum number of real images, drawn with --seed. Default: all.")
_STEP = flags.DEFINE_string(
    "step", "latest", "Checkpoint step to evaluate: a saved step number, 'latest' or 'best'.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the latents, the real-image selection and the metrics' random draws.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 50, "Images per generator and Inception call.")
_INCEPTION_WEIGHTS = flags.DEFINE_string(
    "inception_weights", None,
    "FID Inception weights .npz (see jaxgan/evaluation/inception.py). Default: "
    "$JAXGAN_INCEPTION_WEIGHTS.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None,
    "Folder for cached reference features. Default: $JAXGAN_CACHE_DIR/reference_statistics or "
    "~/.cache/jaxgan/reference_statistics.")
_OUT = flags.DEFINE_string("out", None, "Folder for the result files. Default: <workdir>/eval.")
_NAME = flags.DEFINE_string("name", "", "Suffix added to each result file name.")
_WEIGHTS = flags.DEFINE_enum(
    "weights", None, ["ema", "raw"],
    "Generator weights: the moving average (ema) or the trained ones (raw), for families that "
    "keep an EMA (BigGAN-lite). Default: the run's config.sample.weights.")
_TRUNCATION = flags.DEFINE_float(
    "truncation", None,
    "Redraw latent values with |z| above this threshold (0 = off), for families that support "
    "truncation (BigGAN-lite). Default: the run's config.sample.truncation.")
_PER_CLASS = flags.DEFINE_bool(
    "per_class", False,
    "Conditional runs only: also compute each metric per class, fakes of a class against the "
    "reals of that class, and add them to the result files under 'per_class'.")
_CLASS_TEST = flags.DEFINE_string(
    "class_test", None,
    "class_accuracy: folder of held-out labelled real images, one subfolder per class, to test "
    "the classifier on. Default: hold out --class_holdout of the real images.")
_CLASS_HOLDOUT = flags.DEFINE_float(
    "class_holdout", 0.1,
    "class_accuracy without --class_test: fraction of each class's real images held out from "
    "the classifier's training, drawn with --seed.")
_CLASSIFIER_EPOCHS = flags.DEFINE_integer(
    "classifier_epochs", 10, "class_accuracy: training epochs of the classifier.")
_CLASSIFIER_DIR = flags.DEFINE_string(
    "classifier_dir", None,
    "class_accuracy: folder of cached classifiers. Default: --out, else <workdir>/eval.")
_COMPARE = flags.DEFINE_string(
    "compare", None,
    "Two result files, comma-separated: print both values and their difference, or fail if "
    "their settings differ. Needs no other flag.")


def _compare(paths: str) -> None:
  from jaxgan.evaluation import results  # pylint: disable=g-import-not-at-top

  parts = [part for part in paths.split(",") if part]
  if len(parts) != 2:
    cli.exit_with_error(f"--compare needs two result files separated by a comma, got {paths!r}.")
  comparison = results.compare(results.read(parts[0]), results.read(parts[1]))
  print(json.dumps(comparison, indent=2))


def _check_flags() -> None:
  if not _WORKDIR.value:
    cli.exit_with_error(
        "--workdir is required, for example python -m jaxgan.evaluate --workdir runs/x.")
  if _NUM.value < 2:
    cli.exit_with_error(f"--num must be at least 2, got {_NUM.value}.")
  if _NUM_REAL.value is not None and _NUM_REAL.value < 2:
    cli.exit_with_error(f"--num_real must be at least 2, got {_NUM_REAL.value}.")
  if _BATCH_SIZE.value < 1:
    cli.exit_with_error(f"--batch_size must be at least 1, got {_BATCH_SIZE.value}.")
  if _REAL.value and not os.path.isdir(_REAL.value):
    cli.exit_with_error(f"--real folder {_REAL.value} does not exist. Pass a folder of images.")
  if _CLASS_TEST.value and not os.path.isdir(_CLASS_TEST.value):
    cli.exit_with_error(
        f"--class_test folder {_CLASS_TEST.value} does not exist. Pass a folder with one "
        "subfolder of images per class.")
  if _TRUNCATION.value is not None and _TRUNCATION.value < 0:
    cli.exit_with_error(f"--truncation must be >= 0 (0 = off), got {_TRUNCATION.value}.")
  if not 0 < _CLASS_HOLDOUT.value < 1:
    cli.exit_with_error(f"--class_holdout must be between 0 and 1, got {_CLASS_HOLDOUT.value}.")
  if _CLASSIFIER_EPOCHS.value < 1:
    cli.exit_with_error(f"--classifier_epochs must be at least 1, got {_CLASSIFIER_EPOCHS.value}.")
  if _OUT.value:
    cli.check_output_folder("--out", _OUT.value)
  if _CLASSIFIER_DIR.value:
    cli.check_output_folder("--classifier_dir", _CLASSIFIER_DIR.value)


def main(argv: list[str]) -> None:
  del argv
  if _COMPARE.value:
    _compare(_COMPARE.value)
    return
  _check_flags()

  # Imported here so that --help and flag errors do not pay for importing JAX.
  from jaxgan.evaluation import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import inception  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import metric_names  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import results  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import runs  # pylint: disable=g-import-not-at-top

  metrics = evaluator_lib.parse_metrics(
      _METRICS.value, evaluator_lib.METRICS + (metric_names.CLASS_ACCURACY,))
  if any(metric in evaluator_lib.INCEPTION_METRICS for metric in metrics):
    inception.resolve_weights_path(_INCEPTION_WEIGHTS.value)
  # Checked before the restore, which takes most of the start-up time.
  saved_config = runs.load_config(_WORKDIR.value)
  runs.check_sampling_options(saved_config, _WEIGHTS.value, _TRUNCATION.value)
  if not runs.draws_images_from_latents(saved_config):
    cli.exit_with_error(
        f"The {saved_config.model.family} family draws no images from latents, so "
        f"jaxgan.evaluate has no images to score. Write its sample grid instead: python -m "
        f"jaxgan.sample --workdir {_WORKDIR.value} --grid PATH.png.")
  _check_class_accuracy_request(metrics, saved_config)
  run = runs.load_run(_WORKDIR.value, _STEP.value)
  run = runs.with_sampling_options(run, _WEIGHTS.value, _TRUNCATION.value)
  if _PER_CLASS.value and not run.config.model.get("num_classes", 0):
    cli.exit_with_error(
        f"--per_class needs a conditional run, but {run.workdir} has no classes "
        "(model.num_classes=0). Remove --per_class.")
  real_config = (evaluator_lib.folder_config(run.config, _REAL.value) if _REAL.value
                 else run.config)
  reals = _load_reals("--real", real_config, _NUM_REAL.value, _SEED.value)
  image_metrics = [metric for metric in metrics if metric != metric_names.CLASS_ACCURACY]
  evaluator = evaluator_lib.Evaluator(
      image_metrics, reals, seed=_SEED.value, inception_weights=_INCEPTION_WEIGHTS.value,
      cache_dir=_CACHE_DIR.value, batch_size=_BATCH_SIZE.value)

  latents = runs.latents(run, _NUM.value, _SEED.value)
  sampler = runs.Sampler(run.family, run.state, _BATCH_SIZE.value)
  fakes = runs.to_uint8(sampler(latents))
  settings = runs.base_settings(run, _SEED.value)
  records = evaluator.evaluate(fakes, settings)
  per_class = (evaluator.evaluate_per_class(fakes, latents["label"], settings)
               if _PER_CLASS.value and image_metrics else {})

  out = _OUT.value or os.path.join(run.workdir, "eval")
  if metric_names.CLASS_ACCURACY in metrics:
    records.append(_class_accuracy_record(run, reals, fakes, latents["label"], settings, out))
  for record in records:
    if record["metric"] in per_class:
      record["per_class"] = per_class[record["metric"]]
    path = results.write(record, out, _result_name(record, run.step, runs.has_ema(run.config)))
    if record["metric"] == metric_names.CLASS_ACCURACY:
      from jaxgan.evaluation import class_accuracy  # pylint: disable=g-import-not-at-top

      print(f"{class_accuracy.summary_line(record)} (step {run.step}, "
            f"{record['settings']['weights']} weights) -> {path}")
    else:
      print(f"{record['metric']} = {record['value']:.6g} (step {run.step}, epoch {run.epoch}, "
          f"{record['settings']['weights']} weights, {record['settings']['num_fake']} fake, "
            f"{record['settings']['num_real']} real) -> {path}")
    for entry in record.get("per_class", []):
      held_out = (f", held-out real accuracy {entry['real_accuracy']:.4g}"
                  if "real_accuracy" in entry else "")
      print(f"  {entry['class']}: {entry['value']:.6g} ({entry['num_fake']} fake, "
            f"{entry['num_real']} real{held_out})")


def _check_class_accuracy_request(metrics: list[str], config) -> None:
  """Rejects class_accuracy for an unconditional run, and its flags without it."""
  from jaxgan.evaluation import metric_names  # pylint: disable=g-import-not-at-top

  if metric_names.CLASS_ACCURACY not in metrics:
    for holder in (_CLASS_TEST, _CLASS_HOLDOUT, _CLASSIFIER_EPOCHS, _CLASSIFIER_DIR):
      if holder.present:
        cli.exit_with_error(
            f"--{holder.name} is used only by the class_accuracy metric. Add class_accuracy to "
            f"--metrics or remove --{holder.name}.")
    return
  if not config.model.get("num_classes", 0):
    cli.exit_with_error(
        f"class_accuracy needs a conditional run, but {_WORKDIR.value} has no classes "
        "(model.num_classes=0). Remove class_accuracy from --metrics.")


def _load_reals(flag: str, config, max_images: int | None = None, seed: int = 0):
  """Reads real images as `evaluator.load_real_images` does, with data errors that name `flag`.

  The data sources advise --config.data.dir, a training flag, so that advice is rewritten to the
  evaluate flag that sets the folder.
  """
  from jaxgan.errors import DataError  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top

  try:
    return evaluator_lib.load_real_images(config, max_images, seed)
  except DataError as error:
    raise DataError(str(error).replace("--config.data.dir", flag)) from None


def _class_accuracy_record(run, reals, fakes, fake_labels, settings: dict, out: str) -> dict:
  """Trains or reads the cached classifier, then classifies the fakes."""
  from jaxgan.evaluation import class_accuracy  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import classifier  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top

  test_reals = None
  if _CLASS_TEST.value:
    test_reals = _load_reals("--class_test",
                             evaluator_lib.folder_config(run.config, _CLASS_TEST.value))
  train_reals, test_reals = class_accuracy.split_reals(
      reals, test_reals, _CLASS_HOLDOUT.value, _SEED.value)
  classifier_settings = classifier.ClassifierSettings(epochs=_CLASSIFIER_EPOCHS.value,
                                                      seed=_SEED.value)
  model, description, _ = class_accuracy.load_or_train(
      train_reals, test_reals, run.config.model.num_classes, classifier_settings,
      _CLASSIFIER_DIR.value or out)
  return class_accuracy.make_record(model, description, fakes, fake_labels, settings)


def _result_name(record: dict, step: int, has_ema: bool) -> str:
  """Returns <metric>_step<S>[_<weights>][_trunc<T>][_<--name>].

  The weights appear for every family with an EMA, and _trunc<T> for a non-zero truncation, so
  that EMA and raw results, or results at different truncations, do not overwrite each other.
  """
  settings = record["settings"]
  name = f"{record['metric']}_step{step}"
  if has_ema:
    name += f"_{settings['weights']}"
  if settings["truncation"]:
    name += f"_trunc{settings['truncation']:g}"
  if _NAME.value:
    name += f"_{_NAME.value}"
  return name

if __name__ == "__main__":
  cli.run(main)
