"""Evaluation during training: metrics every few epochs and a best checkpoint kept apart.

Configured by the `eval.*` fields of the base config. Every `eval.every_epochs` epochs (and after
the last epoch) the generator draws `eval.num_images` images from fixed latents in inference
mode, and the metrics compare them with as many training images. Results go to TensorBoard
(`eval/<metric>`), to `workdir/eval/history.json`, and under "eval" in `workdir/summary.json`.
With `eval.best_metric` set, the state with the lowest value of that metric so far is saved
in the separate Orbax folder `workdir/best/checkpoints/<step>`. The regular checkpoints'
retention never deletes it; it is replaced only by a better one.
"""

import json
import os
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from jaxgan import config_lib
from jaxgan.errors import ConfigError
from jaxgan.evaluation import metric_names

_HISTORY_FILE = "history.json"
_BEST_FILE = "best.json"


def enabled(config: ml_collections.ConfigDict) -> bool:
  return "eval" in config and config.eval.every_epochs > 0


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the eval.* fields; a config without an `eval` section has evaluation off."""
  if "eval" not in config:
    return
  config_lib.check_number(config, "eval.every_epochs", low=0, integer=True)
  config_lib.check_number(config, "eval.num_images", low=2, integer=True)
  config_lib.check_number(config, "eval.seed", low=0, high=2**31 - 1, integer=True)
  try:
    metrics = metric_names.parse_metrics(config.eval.metrics)
  except metric_names.EvaluationError as error:
    raise ConfigError(
        f"Invalid config value eval.metrics={config.eval.metrics!r}: {error} Pass "
        "--config.eval.metrics=swd,diversity.") from None
  best = config.eval.best_metric
  if best:
    config_lib.check_choice(config, "eval.best_metric", ("",) + metric_names.RANKING_METRICS)
    if best not in metrics:
      raise ConfigError(
          f"Invalid config value eval.best_metric={best!r}: it must be one of eval.metrics "
          f"({config.eval.metrics}). Add it there or pass --config.eval.best_metric=''.")


def _read_json(path: str, default: Any) -> Any:
  if not os.path.isfile(path):
    return default
  with open(path) as f:
    return json.load(f)


def _write_json(path: str, value: Any) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  temporary = path + ".tmp"
  with open(temporary, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(temporary, path)


class PeriodicEvaluation:
  """The evaluator, fixed latents, history and best checkpoint of one training run."""

  def __init__(self, trainer):
    # Imported here so that a run with evaluation off does not import the metrics.
    import jax  # pylint: disable=g-import-not-at-top

    from jaxgan import checkpoint  # pylint: disable=g-import-not-at-top
    from jaxgan import parallel  # pylint: disable=g-import-not-at-top
    from jaxgan.data import source as source_lib  # pylint: disable=g-import-not-at-top
    from jaxgan.evaluation import evaluator  # pylint: disable=g-import-not-at-top

    config = trainer.config
    self.config = config
    self.family = trainer.family
    self.every_epochs = config.eval.every_epochs
    self.best_metric = config.eval.best_metric
    self.is_writer = jax.process_index() == 0
    self.directory = os.path.join(trainer.workdir, "eval")

    # A family with its own kind of data source is evaluated against config.data's images.
    source = trainer.source if isinstance(trainer.source, source_lib.ImageSource) else None
    reals = evaluator.load_real_images(
        config, config.eval.num_images, config.eval.seed, source=source)
    self.evaluator = evaluator.Evaluator(
        evaluator.parse_metrics(config.eval.metrics), reals, seed=config.eval.seed,
        inception_weights=config.eval.inception_weights or None)
    latent_config = ml_collections.ConfigDict(config.to_dict())
    latent_config.seed = config.eval.seed
    self.latents = jax.device_put(
        trainer.family.evaluation_latents(latent_config, len(reals.images)),
        parallel.replicated(trainer.mesh))

    # This runs after the first epoch since the start. A run resumed from a checkpoint older
    # than its last evaluation repeats those epochs, so entries from this step on are dropped.
    self.history = [entry for entry in _read_json(os.path.join(self.directory, _HISTORY_FILE), [])
                    if entry["step"] < trainer.step]
    self.best = _read_json(os.path.join(self.directory, _BEST_FILE), None)
    self.best_workdir = os.path.join(trainer.workdir, "best")
    self._checkpointer_class = checkpoint.Checkpointer
    logging.info("Evaluating %s every %d epoch(s) on %d generated and %d real images.",
                 config.eval.metrics, self.every_epochs, len(reals.images), len(reals.images))

  def _settings(self, trainer) -> dict[str, Any]:
    from jaxgan.evaluation import runs  # pylint: disable=g-import-not-at-top

    return {"workdir": trainer.workdir, "step": trainer.step, "epoch": trainer.meta.epoch,
            "checkpoint_kind": "training", "family": self.config.model.family,
            "arch": self.config.model.get("arch"), "seed": self.config.eval.seed,
            "batchnorm_mode": runs.BATCHNORM_MODE,
            **runs.sampling_settings(self.family, self.config)}

  def after_epoch(self, trainer) -> None:
    """Evaluates when the finished epoch is due, then logs, records and keeps the best."""
    from jaxgan.evaluation import runs  # pylint: disable=g-import-not-at-top

    epoch = trainer.meta.epoch
    if epoch % self.every_epochs and epoch != trainer.num_epochs:
      self.write_summary(trainer)  # summary.json was just rewritten without "eval"
      return
    fakes = runs.to_uint8(np.asarray(trainer.generate(trainer.state, self.latents)))
    records = self.evaluator.evaluate(fakes, self._settings(trainer))
    values = {record["metric"]: float(record["value"]) for record in records}
    trainer.writer.write_scalars(trainer.step, {f"eval/{k}": v for k, v in values.items()})
    logging.info("Evaluation after epoch %d: %s", epoch,
                 ", ".join(f"{k}={v:.4g}" for k, v in values.items()))
    self.history.append({"epoch": epoch, "step": trainer.step, **values})

    if self.best_metric and (self.best is None or
                             values[self.best_metric] < self.best["value"]):
      # keep=1: saving the new best deletes the previous one, and nothing else writes here.
      best_checkpointer = self._checkpointer_class(self.best_workdir, keep=1)
      try:
        best_checkpointer.save(trainer.step, trainer.state, trainer.meta)
      finally:
        best_checkpointer.close()
      self.best = {"metric": self.best_metric, "value": values[self.best_metric],
                   "epoch": epoch, "step": trainer.step}
      logging.info("New best %s=%.4g at step %d, saved in %s.", self.best_metric,
                   values[self.best_metric], trainer.step, best_checkpointer.directory)

    if self.is_writer:
      _write_json(os.path.join(self.directory, _HISTORY_FILE), self.history)
      if self.best is not None:
        _write_json(os.path.join(self.directory, _BEST_FILE), self.best)
      for record in records:
        _write_json(os.path.join(self.directory, "periodic",
                                 f"{record['metric']}_step{trainer.step}.json"), record)
    self.write_summary(trainer)

  def write_summary(self, trainer) -> None:
    """Adds the latest evaluation and the best result under "eval" in summary.json."""
    path = os.path.join(trainer.workdir, "summary.json")
    if not self.is_writer or not os.path.isfile(path) or not self.history:
      return
    summary = _read_json(path, {})
    summary["eval"] = {"last": self.history[-1], "best": self.best}
    _write_json(path, summary)


def after_epoch(trainer) -> None:
  """Runs periodic evaluation for `trainer` (a `train.Trainer`) after an epoch, if enabled.

  The trainer calls this once per finished epoch, after writing summary.json. The evaluation
  state is created on the first call and kept on the trainer as `periodic_evaluation`.
  """
  if not enabled(trainer.config):
    return
  evaluation = getattr(trainer, "periodic_evaluation", None)
  if evaluation is None:
    evaluation = PeriodicEvaluation(trainer)
    trainer.periodic_evaluation = evaluation
  evaluation.after_epoch(trainer)
