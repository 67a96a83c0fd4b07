"""Restores a trained run from its workdir and draws images from its generator.

The run's config comes from `workdir/config.json`, laid over the family's base config so that a
run saved before a config key existed gets that key's default. The state is restored from any
saved checkpoint step, or from the best checkpoint that periodic evaluation keeps.
"""

import dataclasses
import importlib
import json
import os
import re
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxgan import checkpoint
from jaxgan import families
from jaxgan.errors import ConfigError
from jaxgan.errors import JaxganError

BEST_DIRECTORY = "best"
# BatchNorm mode of the generator when it draws images for evaluation and sampling.
BATCHNORM_MODE = "inference (running statistics)"


class RunError(JaxganError):
  """A workdir or checkpoint step that cannot be evaluated or sampled."""


@dataclasses.dataclass
class Run:
  """A restored run: its config, family, train state and the step of that state."""

  workdir: str
  config: ml_collections.ConfigDict
  family: families.Family
  state: Any
  step: int
  epoch: int
  checkpoint_kind: str  # "regular" or "best"


def _merge(base: ml_collections.ConfigDict, saved: dict[str, Any]) -> list[str]:
  """Writes `saved` into `base` recursively; returns the dotted keys `saved` lacks."""
  missing = []

  def visit(node, values, prefix):
    for key in node.keys():
      if key not in values:
        missing.append(prefix + key)
    for key, value in values.items():
      if isinstance(value, dict) and key in node and isinstance(node[key],
                                                                 ml_collections.ConfigDict):
        visit(node[key], value, f"{prefix}{key}.")
      else:
        node[key] = value

  with base.unlocked():
    visit(base, saved, "")
  return missing


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """Returns the config saved in `workdir/config.json`, completed with base-config defaults."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isdir(workdir):
    raise RunError(f"Workdir {workdir} does not exist. Pass the --workdir of a trained run.")
  if not os.path.isfile(path):
    raise RunError(
        f"No config.json in {workdir}: it is not a jaxgan workdir. Pass the --workdir of a run "
        "started with python -m jaxgan.main.")
  with open(path) as f:
    saved = json.load(f)
  family = saved.get("model", {}).get("family", "dcgan")
  try:
    base = importlib.import_module(f"jaxgan.base_configs.{family}").get_config()
  except ModuleNotFoundError:
    base = ml_collections.ConfigDict()
  missing = _merge(base, saved)
  if missing:
    logging.info("config.json of %s lacks %s; using the base config's values.", workdir,
                 ", ".join(missing))
  return base


def _checkpoint_directory(workdir: str, best: bool) -> str:
  return os.path.join(workdir, BEST_DIRECTORY) if best else workdir


def available_steps(workdir: str, best: bool = False) -> list[int]:
  """Returns the saved checkpoint steps, without creating any folder."""
  directory = os.path.join(_checkpoint_directory(workdir, best), "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def load_run(workdir: str, step: str | int | None = None) -> Run:
  """Restores the checkpoint `step` of a run: an int, None or "latest", or "best".

  Raises:
    RunError: for a missing workdir or config, no checkpoint, or a step that was not saved.
  """
  workdir = os.path.abspath(workdir)
  if not os.path.isdir(workdir):
    raise RunError(f"Workdir {workdir} does not exist. Pass the --workdir of a trained run.")
  config = load_config(workdir)
  family = families.get(config.model.family)

  best = step == "best"
  steps = available_steps(workdir, best)
  if not steps:
    if best and not config.eval.get("best_metric"):
      raise RunError(
          f"No best checkpoint in {workdir}: the run trained with eval.best_metric unset, and only "
          "periodic evaluation with it keeps one. Pass --step latest or a saved step, or train "
          "with --config.eval.every_epochs=<N> --config.eval.best_metric=swd (one of "
          "eval.metrics).")
    where = "best checkpoint (periodic evaluation with eval.best_metric keeps it)" if best else \
        "checkpoint"
    raise RunError(f"No {where} in {workdir}. Train the run until it saves one.")
  if step in (None, "latest", "best"):
    chosen = steps[-1]
  else:
    try:
      chosen = int(step)
    except ValueError:
      raise RunError(
          f"Invalid step {step!r}: pass a saved step number, 'latest' or 'best'.") from None
    if chosen not in steps:
      raise RunError(
          f"No checkpoint for step {chosen} in {workdir}: saved steps are "
          f"{', '.join(map(str, steps))}. Pass one of them with --step.")

  checkpointer = checkpoint.Checkpointer(
      _checkpoint_directory(workdir, best), keep=len(steps), read_only=True)
  try:
    template = family.init_state(config, steps_per_epoch=1)
    state, meta = checkpointer.restore(chosen, template)
  finally:
    checkpointer.close()
  logging.info("Restored %s step %d (%d epoch(s) done).", workdir, chosen, meta.epoch)
  return Run(workdir=workdir, config=config, family=family, state=state, step=chosen,
             epoch=meta.epoch, checkpoint_kind="best" if best else "regular")


def has_ema(config: ml_collections.ConfigDict) -> bool:
  """Returns whether the run keeps a moving average (EMA) of G: its config has sample.weights."""
  return "weights" in (config.get("sample") or {})


def check_sampling_options(config: ml_collections.ConfigDict, weights: str | None = None,
                           truncation: float | None = None) -> None:
  """Raises RunError for a weights or truncation request that the run's family cannot apply.

  A family has a moving average (EMA) of G when its config has sample.weights. It supports
  truncation when its config has sample.truncation (applied when the latents are drawn) or when
  its `Family` defines `truncate(state, latents, truncation) -> latents`.
  """
  name = config.model.family
  sample = config.get("sample") or {}
  if weights is not None and not has_ema(config):
    raise RunError(
        f"The {name} family keeps no moving average (EMA) of the generator, so there is only one "
        f"set of weights. Remove --weights={weights}.")
  has_truncate = getattr(families.get(name), "truncate", None) is not None
  if truncation is not None and "truncation" not in sample and not has_truncate:
    raise RunError(
        f"The {name} family has no truncation: its generator takes the latents as drawn. "
        "Remove --truncation.")
  if weights is not None or truncation is not None:
    _with_options(config, weights, truncation)


def with_sampling_options(run: Run, weights: str | None = None,
                          truncation: float | None = None) -> Run:
  """Returns `run` with config.sample.weights and config.sample.truncation replaced when given.

  Raises RunError as `check_sampling_options` does, and ConfigError for values the family rejects.
  NOTE: a family's `truncate` hook is not applied here, because it acts on drawn latents
  (jaxgan.sample applies it). jaxgan.evaluate therefore truncates only through the config.
  """
  check_sampling_options(run.config, weights, truncation)
  if weights is None and truncation is None:
    return run
  return dataclasses.replace(run, config=_with_options(run.config, weights, truncation))


def _with_options(config: ml_collections.ConfigDict, weights: str | None,
                  truncation: float | None) -> ml_collections.ConfigDict:
  """Returns a validated copy of `config` with the sampling options set."""
  config = ml_collections.ConfigDict(config.to_dict())
  if weights is not None:
    config.sample.weights = weights
  if truncation is not None and "truncation" in config.get("sample", {}):
    config.sample.truncation = truncation
  try:
    families.get(config.model.family).validate(config)
  except ConfigError as error:
    raise _as_flag_error(error) from None
  return config


def _as_flag_error(error: ConfigError) -> JaxganError:
  """Rewrites a family's error about sample.weights or sample.truncation to name the CLI flag.

  The family's message advises --config.sample.<key>, which jaxgan.sample and jaxgan.evaluate
  do not have. Any other error is returned unchanged.
  """
  match = re.match(r"Invalid config value sample\.(weights|truncation)=(.*?): (.*?)\. Change it "
                   r"in the config file", str(error))
  if match is None:
    return error
  name, value, reason = match.groups()
  return RunError(f"Invalid --{name}={value}: it {reason}. Pass another --{name}.")


def draws_images_from_latents(config: ml_collections.ConfigDict) -> bool:
  """Returns whether the run's family draws one image per latent, judged from the config alone.

  A family whose `evaluation_latents` has no per-image leaf (SDPC, whose grid shows its
  dictionary atoms) has no images to draw from latents, so only its sample grid exists.
  """
  family = families.get(config.model.family)
  drawn = family.evaluation_latents(config, 2)
  return any(np.ndim(leaf) for leaf in jax.tree.leaves(drawn))


def latents(run: Run, num: int, seed: int) -> Any:
  """Returns `num` images' generator inputs from the family's `evaluation_latents`, with
  config.seed set to `seed`."""
  config = ml_collections.ConfigDict(run.config.to_dict())
  config.seed = seed
  return run.family.evaluation_latents(config, num)


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Maps images in [-1, 1] to uint8 by rounding (x + 1) * 127.5, as when saving a PNG."""
  return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _batch_of(latent_batch: Any, start: int, size: int) -> Any:
  """Slices images [start, start + size) from every per-image leaf of the latents.

  A short batch is padded by repeating its first image. Scalar leaves are kept whole.
  """

  def take(leaf):
    leaf = np.asarray(leaf)
    if leaf.ndim == 0:
      return leaf
    part = leaf[start:start + size]
    if len(part) < size:
      part = np.concatenate([part, np.repeat(part[:1], size - len(part), axis=0)])
    return part

  return jax.tree.map(take, latent_batch)


def count_images(latent_batch: Any) -> int:
  """Returns the length of the leading axis of the per-image leaves of a latent pytree."""
  lengths = {np.shape(leaf)[0] for leaf in jax.tree.leaves(latent_batch) if np.ndim(leaf)}
  if not lengths:
    raise ValueError(
        "Invalid latents: no leaf has a per-image axis, so they do not say how many images to "
        "draw. Pass at least one array [N, ...].")
  if len(lengths) != 1:
    raise ValueError(
        f"Invalid latents: their per-image leaves have different lengths {sorted(lengths)}. "
        "Every leaf needs one entry per image.")
  return lengths.pop()


class Sampler:
  """Runs a family's `generate` in fixed-size batches with one compiled function.

  The generator runs in inference mode (BatchNorm with running statistics), so an image
  depends only on its latent, not on the batch it is drawn in. The latents may be one array or
  any pytree whose leaves are per-image arrays [N, ...] or scalars shared by all images. The
  last batch is padded by repeating its first image's latents.
  """

  def __init__(self, family: families.Family, state: Any, batch_size: int = 64):
    self.batch_size = batch_size
    self.state = state
    self._generate = jax.jit(family.generate)

  def __call__(self, latent_batch: Any) -> np.ndarray:
    """Returns float32 images [N, S, S, 3] in [-1, 1] for latents of N images."""
    latent_batch = jax.tree.map(np.asarray, latent_batch)
    total = count_images(latent_batch)
    outputs = []
    for start in range(0, total, self.batch_size):
      count = min(self.batch_size, total - start)
      batch = _batch_of(latent_batch, start, self.batch_size)
      images = np.asarray(self._generate(self.state, batch))
      if len(images) != self.batch_size:
        raise RunError(
            f"The generator returned {len(images)} images for {self.batch_size} latents, so it "
            "does not draw one image per latent. Draw its sample grid instead "
            "(python -m jaxgan.sample --grid PATH.png).")
      outputs.append(images[:count])
    return np.concatenate(outputs)


def base_settings(run: Run, seed: int) -> dict[str, Any]:
  """Returns the settings of images drawn from `run` that every evaluation result records."""
  return {
      "workdir": run.workdir,
      "step": run.step,
      "epoch": run.epoch,
      "checkpoint_kind": run.checkpoint_kind,
      "family": run.config.model.family,
      "arch": run.config.model.get("arch"),
      "seed": seed,
      "batchnorm_mode": BATCHNORM_MODE,
      **sampling_settings(run.family, run.config),
  }


def sampling_settings(family: families.Family,
                      config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Returns the weights behind the images ("ema" or "raw"), whether they are the EMA, and the
  truncation (None for a family without one), from the family's `sample_info`."""
  info = family.sample_info(config)
  weights = info.get("weights", "raw")
  return {"weights": weights, "ema": weights == "ema", "truncation": info.get("truncation")}
