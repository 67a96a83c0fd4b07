"""Evaluates a trained run: python -m jaxgan.evaluate --workdir runs/x --metrics swd,diversity.

Draws --num images from a checkpoint's generator (inference-mode BatchNorm), compares them with
real images and writes one result per metric to <workdir>/eval/<metric>_step<S>.json (or
--out), with every setting that affects the number. Real images are the run's own training data
unless --real names a folder; for a conditional run, either is a folder of class subfolders.
For families with an EMA of G (BigGAN-lite), --weights and --truncation override the run's
sample.* values, and the file name gains _<weights> and, for a non-zero truncation, _trunc<T>. FID and KID need the Inception weights (--inception_weights or
$JAXGAN_INCEPTION_WEIGHTS); swd, diversity and nn need none.

    python -m jaxgan.evaluate --workdir runs/x --metrics swd,diversity,nn,fid,kid --real data/
    python -m jaxgan.evaluate --workdir runs/biggan --weights raw --per_class
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
    "Comma-separated metrics: swd, diversity, nn, fid, kid.")
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


def main(argv: list[str]) -> None:
  del argv
  if _COMPARE.value:
    _compare(_COMPARE.value)
    return
  _check_flags()

  # Imported here so that --help and flag errors do not pay for importing JAX.
  from jaxgan.evaluation import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import inception  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import results  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import runs  # pylint: disable=g-import-not-at-top

  metrics = evaluator_lib.parse_metrics(_METRICS.value)
  if any(metric in evaluator_lib.INCEPTION_METRICS for metric in metrics):
    inception.resolve_weights_path(_INCEPTION_WEIGHTS.value)
  # Checked before the restore, which takes most of the start-up time.
  runs.check_sampling_options(runs.load_config(_WORKDIR.value), _WEIGHTS.value, _TRUNCATION.value)
  run = runs.load_run(_WORKDIR.value, _STEP.value)
  run = runs.with_sampling_options(run, _WEIGHTS.value, _TRUNCATION.value)
  if _PER_CLASS.value and not run.config.model.get("num_classes", 0):
    cli.exit_with_error(
        f"--per_class needs a conditional run, but {run.workdir} has no classes "
        "(model.num_classes=0). Remove --per_class.")
  real_config = (evaluator_lib.folder_config(run.config, _REAL.value) if _REAL.value
                 else run.config)
  reals = evaluator_lib.load_real_images(real_config, _NUM_REAL.value, _SEED.value)
  evaluator = evaluator_lib.Evaluator(
      metrics, reals, seed=_SEED.value, inception_weights=_INCEPTION_WEIGHTS.value,
      cache_dir=_CACHE_DIR.value, batch_size=_BATCH_SIZE.value)

  latents = runs.latents(run, _NUM.value, _SEED.value)
  sampler = runs.Sampler(run.family, run.state, _BATCH_SIZE.value)
  fakes = runs.to_uint8(sampler(latents))
  settings = runs.base_settings(run, _SEED.value)
  records = evaluator.evaluate(fakes, settings)
  per_class = (evaluator.evaluate_per_class(fakes, latents["label"], settings)
               if _PER_CLASS.value else {})

  out = _OUT.value or os.path.join(run.workdir, "eval")
  for record in records:
    if per_class:
      record["per_class"] = per_class[record["metric"]]
    path = results.write(record, out, _result_name(record, run.step, runs.has_ema(run.config)))
    print(f"{record['metric']} = {record['value']:.6g} (step {run.step}, epoch {run.epoch}, "
          f"{record['settings']['weights']} weights, {record['settings']['num_fake']} fake, "
          f"{record['settings']['num_real']} real) -> {path}")
    for entry in record.get("per_class", []):
      print(f"  {entry['class']}: {entry['value']:.6g} ({entry['num_fake']} fake, "
            f"{entry['num_real']} real)")


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
