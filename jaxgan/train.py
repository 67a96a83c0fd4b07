"""The training loop shared by every model family: data, steps, metrics, samples, checkpoints.

Workdir layout (only process 0 writes files other than checkpoints):
  checkpoints/<step>/     Orbax checkpoints: the newest train.keep_checkpoints regular ones, the
                          newest train.ring_epochs, and those pinned by monitor events
  events.jsonl            loss-spike and mode-collapse events, one JSON object a line
                          (format in jaxgan/monitors.py)
  samples/epoch_NNNN.png  5x5 grid from the same 25 fixed latents, every sample_every_epochs
  samples/epoch_NNNN.json how the grid was drawn, for families with a `sample_info`
  plots/losses.png        per-epoch mean losses, redrawn every epoch
  plots/scores.png        per-epoch mean D(x) and D(G(z))
  summary.json            wall time per epoch and in total, last epoch's metric means, and the
                          per-epoch means of every metric ("history")
  config.json             the config of the latest start
  events.out.tfevents.*   TensorBoard scalars (step metrics and epoch means) and sample grids
  jaxgan.lock             the PID of the process that trains in the workdir (see workdir_lock)
"""

import dataclasses
import json
import math
import os
import signal
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers
from clu import metrics as clu_metrics
from jax.experimental import multihost_utils

from jaxgan import checkpoint
from jaxgan import config_lib
from jaxgan import disk_errors
from jaxgan import families
from jaxgan import monitors
from jaxgan import parallel
from jaxgan import plots
from jaxgan import progress
from jaxgan import workdir_lock
from jaxgan.data import labeled
from jaxgan.data import pipeline
from jaxgan.data import source as source_lib
from jaxgan.evaluation import periodic
from jaxgan.errors import ConfigError
from jaxgan.errors import JaxganError

_TRAIN_KEY_STREAM = 1

# Config keys that cannot change when a run resumes. Shape keys change the arrays in the
# checkpoint, so no flag can override them. The others change the meaning of the saved data
# position or random streams, which --allow_config_change accepts.
SHAPE_KEYS = ("model", "data.image_size", "optim.optimizer")
# The data_b and min_age/max_images keys select the images of two-domain families (CycleGAN).
STRUCTURAL_KEYS = SHAPE_KEYS + (
    "data.batch_size", "data.source", "data.min_age", "data.max_images", "data_b.source",
    "data_b.min_age", "data_b.max_images", "seed")
# Keys under SHAPE_KEYS that change no array in the checkpoint: the compute dtype of the networks.
# Changing them is a structural difference, which --allow_config_change accepts.
SHAPE_NEUTRAL_KEYS = ("model.dtype",)


class TrainingDivergedError(JaxganError):
  """A metric mean or a value of the train state became NaN or infinite.

  Attributes:
    values: the non-finite metric means by name, or {"train_state": nan} for the train state.
  """

  def __init__(self, message: str, values: dict[str, float] | None = None):
    super().__init__(message)
    self.values = values or {}


class ImmediateStop(KeyboardInterrupt):
  """A second Ctrl+C during training, which stops the run at once without saving."""


class StopRequest:
  """Turns the first SIGTERM or SIGINT into a request to save and stop after the current step."""

  def __init__(self):
    self.requested = False
    # Set once the stop's checkpoint is saved. A second Ctrl+C after that point has nothing left
    # to cut short, so it no longer turns the clean stop (status 0) into status 130.
    # NOTE: after `__exit__` restores the previous handler, a Ctrl+C while the trainer closes
    # still raises KeyboardInterrupt, which jaxgan.main reports with status 130.
    self.saved = False
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.saved:
      logging.warning("Received %s after the stop's checkpoint was saved; exiting as planned.",
                      signal.Signals(signum).name)
      return
    if self.requested and signum == signal.SIGINT:
      raise ImmediateStop
    self.requested = True
    logging.warning("Received %s: finishing the current step, then saving a checkpoint and "
                    "stopping. Press Ctrl+C again to stop at once without saving.",
                    signal.Signals(signum).name)

  def __enter__(self):
    for signum in (signal.SIGTERM, signal.SIGINT):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def agreed(self) -> bool:
    """Returns whether any process received a stop signal; all processes must call it together.

    A signal can reach the processes of a job at different steps (or reach only one of them), and
    a process that stops while the others run on would leave them waiting in the next collective.
    With several processes this is an all-gather, one small collective per call.
    """
    if jax.process_count() == 1:
      return self.requested
    requests = multihost_utils.process_allgather(np.int32(self.requested))
    return bool(np.any(requests))


def structural_differences(
    saved: dict[str, Any], current: ml_collections.ConfigDict, keys: tuple[str, ...] = STRUCTURAL_KEYS,
    exclude: tuple[str, ...] = (),
) -> list[str]:
  """Lists "key: saved -> current" for the given keys (and keys below them) that differ.

  Keys in `exclude` are skipped.
  """
  saved_flat = config_lib.flatten(ml_collections.ConfigDict(saved))
  current_flat = config_lib.flatten(current)
  differences = []
  for key in sorted(set(saved_flat) | set(current_flat)):
    if not any(key == k or key.startswith(k + ".") for k in keys) or key in exclude:
      continue
    # A key that the saved config lacks was added to jaxgan after that run started, so the run
    # can still resume. NOTE: the only such key so far is model.init, which sets initial weights
    # that the restore overwrites. A new key that changes array shapes would need its own check.
    if key not in saved_flat:
      continue
    old, new = saved_flat.get(key), current_flat.get(key)
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
      old, new = list(old), list(new)
    if old != new:
      differences.append(f"{key}: {old!r} -> {new!r}")
  return differences


def _make_collection(names):
  return clu_metrics.Collection.create(
      **{name: clu_metrics.Average.from_output(name) for name in names})


def _num_steps(collection) -> int:
  """Returns how many steps a collection of Average metrics has accumulated."""
  counts = [metric.count for metric in vars(collection).values()
            if isinstance(metric, clu_metrics.Average)]
  return int(counts[0])


def _all_finite(values: dict[str, float]) -> bool:
  return all(np.isfinite(v) for v in values.values())


@jax.jit
def _tree_is_finite(tree) -> jax.Array:
  """Returns a boolean scalar: True if no floating-point leaf of `tree` contains a NaN or infinity."""
  checks = [jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)
            if jnp.issubdtype(leaf.dtype, jnp.inexact)]
  return jnp.stack(checks).all() if checks else jnp.bool_(True)


class _Outputs:
  """Files that process 0 writes: sample grids, curves, summary."""

  def __init__(self, workdir: str, writer: metric_writers.MetricWriter,
               grid_shape: tuple[int, int], sample_info: dict[str, Any]):
    self.workdir = workdir
    self.writer = writer
    self.grid_shape = grid_shape
    self.sample_info = sample_info
    self.is_writer = jax.process_index() == 0

  def write_samples(self, epoch: int, step: int, images: np.ndarray) -> None:
    grid = plots.make_grid(images, *self.grid_shape)
    self.writer.write_images(step, {"samples": grid[None]})
    if self.is_writer:
      path = os.path.join(self.workdir, "samples", f"epoch_{epoch:04d}.png")
      plots.save_png(grid, path)
      if self.sample_info:
        _write_json(os.path.splitext(path)[0] + ".json",
                    {"epoch": epoch, "step": step, **self.sample_info})

  def write_curves(self, history: dict[str, list[float]]) -> None:
    if self.is_writer:
      plots.plot_training_curves(history, os.path.join(self.workdir, "plots"))

  def write_summary(self, meta: checkpoint.Meta, num_epochs: int, steps: int) -> None:
    if not self.is_writer:
      return
    last = {k: v[-1] for k, v in meta.history.items() if v and k != "epoch"}
    summary = {
        "epochs_done": meta.epoch,
        "num_epochs": num_epochs,
        "steps": steps,
        "wall_time_s": float(sum(meta.wall_times)),
        "wall_time_per_epoch_s": [round(t, 3) for t in meta.wall_times],
        "last_epoch_means": last,
        "history": meta.history,
    }
    _write_json(os.path.join(self.workdir, "summary.json"), summary)


def _write_json(path: str, value: Any) -> None:
  temporary = path + ".tmp"
  with open(temporary, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(temporary, path)


def _shorten(text: str, max_chars: int = 400) -> str:
  """Joins the lines of `text` and cuts it to `max_chars`, for errors that print whole trees."""
  text = " ".join(text.split())
  return text if len(text) <= max_chars else text[:max_chars] + " ..."


def _restore_or_init(config, checkpointer, state, allow_config_change):
  """Returns (state, meta, resumed), restoring the newest checkpoint when there is one."""
  fresh_key = jax.random.fold_in(jax.random.key(config.seed), _TRAIN_KEY_STREAM)
  meta = checkpoint.Meta(
      epoch=0, batch_in_epoch=0,
      train_key=np.asarray(jax.random.key_data(fresh_key)).tolist(),
      config=config.to_dict(), history={}, wall_times=[])
  latest = checkpointer.latest_step()
  if latest is None:
    return state, meta, False

  saved_meta_config = checkpointer.restore_meta(latest).config
  shape_differences = structural_differences(
      saved_meta_config, config, SHAPE_KEYS, exclude=SHAPE_NEUTRAL_KEYS)
  if shape_differences:
    raise ConfigError(
        f"The workdir contains a checkpoint (step {latest}) of a run with different array shapes: "
        f"{'; '.join(shape_differences)}. A checkpoint cannot be resumed with another model, "
        "image size or optimizer: use another --workdir or restore those values.")
  differences = structural_differences(saved_meta_config, config)
  if differences and not allow_config_change:
    raise ConfigError(
        f"The workdir contains a checkpoint (step {latest}) of a run with a different config: "
        f"{'; '.join(differences)}. Use another --workdir, restore those values, or pass "
        "--allow_config_change to resume anyway.")
  if differences:
    logging.warning("Resuming despite config changes: %s", "; ".join(differences))
  try:
    state, meta = checkpointer.restore(latest, state)
  except ValueError as error:
    raise ConfigError(
        f"Could not restore the checkpoint {checkpointer.directory}/{latest} into the current "
        f"model: {_shorten(str(error))}. Use another --workdir for a different model, or "
        "restore the config values of the saved run (its config.json).") from error
  meta.config = config.to_dict()
  logging.info("Resuming from checkpoint %s/%d: %d epoch(s) done, %d batch(es) into the next.",
               checkpointer.directory, latest, meta.epoch, meta.batch_in_epoch)
  return state, meta, True


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for an invalid value, before any data is read or any array allocated."""
  families.validate_config(config)
  parallel.check_batch_size(config.data.batch_size)


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, allow_config_change: bool = False
) -> checkpoint.Meta:
  """Trains (or resumes) the run in `workdir` until config.train.num_epochs; returns its Meta."""
  validate_config(config)
  family = families.get(config.model.family)

  workdir = os.path.abspath(workdir)
  lock = workdir_lock.WorkdirLock(workdir, enabled=jax.process_index() == 0)
  with lock, disk_errors.full_disk_as_error(workdir):
    trainer = Trainer(config, workdir, family, allow_config_change)
    try:
      return trainer.run()
    finally:
      trainer.close()


class Trainer:
  """One run: its data, jitted step, writers and checkpoints, and the epoch loop over them."""

  def __init__(self, config, workdir, family, allow_config_change):
    self.config = config
    self.workdir = workdir
    self.family = family
    self.mesh = parallel.make_mesh()
    self.replicated = parallel.replicated(self.mesh)

    # The data is checked before the workdir is created, so a wrong data.dir leaves nothing behind.
    self.source = family.make_source(config)
    logging.info("Data: %s", self.source.name)
    os.makedirs(workdir, exist_ok=True)
    self.steps_per_epoch = pipeline.steps_per_epoch(
        self.source.num_images, config.data.batch_size)
    self.num_epochs = config.train.num_epochs
    self.data_sharding = pipeline.Sharding(
        *parallel.process_batch_block(self.mesh, config.data.batch_size))

    self.checkpointer = checkpoint.Checkpointer(
        workdir, config.train.keep_checkpoints, ring=config.train.ring_epochs)
    state = jax.device_put(family.init_state(config, self.steps_per_epoch), self.replicated)
    self.state, self.meta, resumed = _restore_or_init(
        config, self.checkpointer, state, allow_config_change)
    self.step = int(self.state.step)
    self.train_key = jax.random.wrap_key_data(np.asarray(self.meta.train_key, dtype=np.uint32))
    if jax.process_index() == 0:
      _write_json(os.path.join(workdir, "config.json"), config.to_dict())

    self.monitors = monitors.Monitors(config, self.meta.monitor, self._real_reference())
    self.resumed = resumed
    self.writer = None
    self._compile()

  def _real_reference(self) -> np.ndarray | None:
    """Returns the fixed real images, in [-1, 1], that the collapse monitor compares with.

    Class folders give images of every class in equal shares, as the one-row-per-class grid of a
    conditional model has them (monitors.class_balanced_indices).
    """
    config = self.config
    if not monitors.enabled(config) or config.monitor.collapse_ratio <= 0:
      return None
    count = config.monitor.collapse_num_real
    if isinstance(self.source, labeled.LabeledSource):
      indices = monitors.class_balanced_indices(self.source.labels, count, config.seed)
      images = self.source.images.read(indices)
    elif isinstance(self.source, source_lib.ImageSource):
      indices = monitors.reference_indices(self.source.num_images, count, config.seed)
      images = self.source.read(indices)
    else:
      logging.warning(
          "The mode-collapse monitor is off for this run: the %s family's training data (%s) "
          "cannot supply the real images that the monitor compares the sample grid with. The "
          "loss-spike monitor stays on.", config.model.family, self.source.name)
      return None
    return images.astype(np.float32) / 127.5 - 1.0

  def _open_writer(self) -> None:
    """Opens the TensorBoard writer; progress.py logs the step metrics, so no log writer is added."""
    if jax.process_index() == 0:
      self.writer = metric_writers.SummaryWriter(self.workdir)
    else:
      self.writer = metric_writers.MultiWriter([])
    if not self.resumed:
      self.writer.write_hparams({k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                 for k, v in config_lib.flatten(self.config).items()})
    self.outputs = _Outputs(self.workdir, self.writer, self.family.grid_shape(self.config),
                            self.family.sample_info(self.config))

  def _compile(self) -> None:
    """Jits the train step with explicit shardings, accumulating metrics in CLU collections."""
    config = self.config
    train_step = self.family.make_train_step(config, self.steps_per_epoch)
    self.step_inputs = self._make_step_inputs()
    batch_spec = self.family.batch_spec(config, self.source)
    example_batch = {**batch_spec, **self.step_inputs}
    metric_names = sorted(
        jax.eval_shape(train_step, self.state, example_batch, self.train_key)[1])
    self.collection = _make_collection(metric_names)
    collection = self.collection

    def step_and_accumulate(state, batch, key, window, epoch_totals, monitor_window):
      state, metrics = train_step(state, batch, key)
      update = collection.single_from_model_output(**metrics)
      return (state, window.merge(update), epoch_totals.merge(update),
              monitor_window.merge(update))

    replicated = self.replicated
    batch_shardings = {name: parallel.batch_sharded(self.mesh) for name in batch_spec}
    batch_shardings.update({name: replicated for name in self.step_inputs})
    self.jitted_step = jax.jit(
        step_and_accumulate,
        in_shardings=(replicated, batch_shardings, replicated, replicated, replicated,
                      replicated),
        out_shardings=(replicated, replicated, replicated, replicated),
        donate_argnums=(0, 3, 4, 5))
    self.generate = jax.jit(self.family.generate, out_shardings=replicated)
    self.fixed_latents = jax.device_put(
        self.family.fixed_latents(config, math.prod(self.family.grid_shape(config))), replicated)

  def _make_step_inputs(self) -> dict[str, jax.Array]:
    """Returns the family's step inputs plus "lr_scale", which a rollback lowers."""
    inputs = {**self.family.step_inputs(self.config), "lr_scale": np.float32(self.meta.lr_scale)}
    return jax.device_put(inputs, self.replicated)

  def _empty_metrics(self):
    return jax.device_put(self.collection.empty(), self.replicated)

  def run(self) -> checkpoint.Meta:
    meta, config = self.meta, self.config
    if meta.epoch >= self.num_epochs:
      logging.info("The run in %s has finished all %d epochs; raise train.num_epochs to "
                   "continue.", self.workdir, self.num_epochs)
      return meta

    self._open_writer()
    if jax.process_index() == 0:
      removed = monitors.drop_events_after(self.workdir, self.step)
      if removed:
        logging.info("Removed %d monitor event(s) after step %d from %s; the resumed run detects "
                     "them again.", removed, self.step, monitors.EVENTS_FILE)
    logging.info("Training %s/%s from epoch %d of %d: %d steps per epoch, global batch %d, %d "
                 "device(s).", config.model.family, config.model.get("arch", "-"), meta.epoch + 1,
                 self.num_epochs, self.steps_per_epoch, config.data.batch_size,
                 jax.device_count())
    self._start_progress()

    with StopRequest() as stop_request:
      while meta.epoch < self.num_epochs:
        epoch_totals = self._run_epoch_or_roll_back(stop_request)
        if epoch_totals is None:
          continue
        if meta.batch_in_epoch < self.steps_per_epoch:
          # Stopped inside the epoch: save the position reached and leave the epoch unfinished.
          self._check_finite(epoch_totals)
          meta.epoch_totals = self._totals_to_meta(epoch_totals)
          self._save("stop requested", ring_only=True)
          stop_request.saved = True
          logging.info("Stopped at step %d, %d batch(es) into epoch %d; run the same command to "
                       "resume.", self.step, meta.batch_in_epoch, meta.epoch + 1)
          return meta
        saved = self._end_epoch(epoch_totals)
        if stop_request.agreed():
          if not saved:
            self._save("stop requested", ring_only=True)
          stop_request.saved = True
          logging.info("Stopped after epoch %d (step %d); run the same command to resume.",
                       meta.epoch, self.step)
          return meta

    logging.info("Finished %d epochs (%d steps) in %s.", self.num_epochs, self.step, self.workdir)
    return meta

  def _start_progress(self) -> None:
    self.display = progress.Progress(
        total_steps=self.num_epochs * self.steps_per_epoch,
        steps_per_epoch=self.steps_per_epoch, start_step=self.step,
        metrics=self.family.progress_metrics)

  def _run_epoch(self, stop_request: StopRequest):
    """Runs the remaining batches of the current epoch, or until a stop is requested.

    Returns the epoch's accumulated metrics. A stop request ends the epoch early unless the
    step that was running was the epoch's last.
    """
    meta, config = self.meta, self.config
    if meta.batch_in_epoch:
      logging.info("Skipping the %d batches of epoch %d that ran before the stop.",
                   meta.batch_in_epoch, meta.epoch + 1)
    self.epoch_start = time.perf_counter()
    window, epoch_totals = self._empty_metrics(), self._empty_metrics()
    if meta.batch_in_epoch and meta.epoch_totals:
      epoch_totals = self._totals_from_meta(meta.epoch_totals)
      self.epoch_start -= meta.epoch_totals["seconds"]
    meta.epoch_totals = {}
    # Step windows end at global steps divisible by monitor.window_steps. The partial window
    # before a resume is not saved, so the first window after it is shorter and is skipped.
    monitor_window = self._empty_metrics()
    window_steps = config.monitor.window_steps if monitors.enabled(config) else 0
    batches = self.family.epoch_batches(
        self.source, config, epoch=meta.epoch, start_batch=meta.batch_in_epoch,
        sharding=self.data_sharding)

    # The input wait of a log window: the time spent waiting for the next batch, over the wall
    # time since the window began (the epoch's start or the previous log line).
    wait_time = 0.0
    window_start = wait_start = time.perf_counter()
    for local_batch in batches:
      wait_time += time.perf_counter() - wait_start
      batch = {**parallel.global_batch(local_batch, self.mesh), **self.step_inputs}
      self.state, window, epoch_totals, monitor_window = self.jitted_step(
          self.state, batch, self.train_key, window, epoch_totals, monitor_window)
      # Waiting for each step keeps at most one step in flight, so a stop request takes effect
      # after the current step and the step rate is measured, not the dispatch rate. tf.data
      # still prepares the next batches meanwhile.
      jax.block_until_ready(self.state.step)
      self.step += 1
      meta.batch_in_epoch += 1

      if self.step % config.train.log_every_steps == 0:
        now = time.perf_counter()
        self._log_window(window, wait_time / max(now - window_start, 1e-9))
        window, wait_time, window_start = self._empty_metrics(), 0.0, now
      if window_steps and self.step % window_steps == 0:
        self._check_step_window(monitor_window, window_steps)
        monitor_window = self._empty_metrics()
      if stop_request.agreed() and meta.batch_in_epoch < self.steps_per_epoch:
        break
      wait_start = time.perf_counter()
    return epoch_totals

  def _totals_to_meta(self, epoch_totals) -> dict[str, Any]:
    """Returns the running epoch totals and elapsed epoch time in the JSON form of Meta."""
    metrics = {name: metric for name, metric in vars(jax.device_get(epoch_totals)).items()
               if isinstance(metric, clu_metrics.Average)}
    return {"sums": {name: float(metric.total) for name, metric in metrics.items()},
            "counts": {name: int(metric.count) for name, metric in metrics.items()},
            "seconds": time.perf_counter() - self.epoch_start}

  def _totals_from_meta(self, saved: dict[str, Any]):
    """Rebuilds the running epoch totals that `_totals_to_meta` stored, with the same dtypes."""
    empty = self.collection.empty()
    averages = {name: metric for name, metric in vars(empty).items()
                if isinstance(metric, clu_metrics.Average)}
    names = set(averages)
    if set(saved["sums"]) != names:
      logging.warning("The checkpoint's epoch totals have metrics %s, but the run has %s; epoch "
                      "%d's means cover only the batches after the resume.",
                      sorted(saved["sums"]), sorted(names), self.meta.epoch + 1)
      return self._empty_metrics()
    metrics = {
        name: metric.replace(total=np.asarray(saved["sums"][name], metric.total.dtype),
                             count=np.asarray(saved["counts"][name], metric.count.dtype))
        for name, metric in averages.items()}
    return jax.device_put(empty.replace(**metrics), self.replicated)

  def _run_epoch_or_roll_back(self, stop_request: StopRequest):
    """Runs `_run_epoch` and checks its means; returns None after a rollback.

    TrainingDivergedError propagates when train.on_nonfinite is "stop", when the run has used
    train.max_rollbacks rollbacks, or when no checkpoint exists yet.
    """
    try:
      epoch_totals = self._run_epoch(stop_request)
      self._check_finite(epoch_totals)
      self._check_state_finite()
      return epoch_totals
    except TrainingDivergedError as error:
      train_config = self.config.train
      latest = self.checkpointer.latest_step()
      if train_config.on_nonfinite != "rollback" or latest is None:
        raise
      if self.meta.rollbacks >= train_config.max_rollbacks:
        raise TrainingDivergedError(
            f"{error} The run had already rolled back {self.meta.rollbacks} time(s), the "
            f"maximum (train.max_rollbacks), and its learning rates were scaled by "
            f"{self.meta.lr_scale:g}.", error.values) from error
      self._roll_back(latest, error)
      return None

  def _roll_back(self, step: int, error: TrainingDivergedError) -> None:
    """Restores the checkpoint of `step` and lowers the learning-rate scale."""
    error_step = self.step
    lr_scale = self.meta.lr_scale * self.config.train.rollback_lr_factor
    rollbacks = self.meta.rollbacks + 1
    self.state, restored = self.checkpointer.restore(step, self.state)
    # The ring and pinned steps describe the checkpoints on disk, which the rollback keeps.
    restored.ring_steps, restored.pinned_steps = self.meta.ring_steps, self.meta.pinned_steps
    # The run loop holds a reference to self.meta, so it is updated in place.
    for field in dataclasses.fields(restored):
      setattr(self.meta, field.name, getattr(restored, field.name))
    self.meta.config = self.config.to_dict()
    self.meta.lr_scale = lr_scale
    self.meta.rollbacks = rollbacks
    self.step = int(self.state.step)
    self.step_inputs = self._make_step_inputs()
    self._start_progress()
    logging.warning(
        "Non-finite metric means before step %d: %s. Rollback %d of at most %d "
        "(train.max_rollbacks): restored the checkpoint at step %d (%d epoch(s) done) and "
        "continuing with the learning rates multiplied by %g.",
        error_step, ", ".join(f"{k}={v}" for k, v in error.values.items()), rollbacks,
        self.config.train.max_rollbacks, step, self.meta.epoch, lr_scale)

  def _check_step_window(self, monitor_window, window_steps: int) -> None:
    """Tests the means of the step window that ends now for spikes."""
    if _num_steps(monitor_window) != window_steps:
      return
    means = self._check_finite(monitor_window)
    self._record_events(self.monitors.update_curves(
        means, "steps", epoch=self.meta.epoch + 1, step=self.step))

  def _record_events(self, events: list[monitors.Event]) -> None:
    """Pins the ring for `events`, then logs them and writes them to TensorBoard and events.jsonl."""
    if not events:
      return
    pinned = self._pin_ring()
    for event in events:
      event.pinned_steps = pinned
      logging.warning("Monitor event: %s. Pinned checkpoint steps: %s.", event.describe(),
                      pinned or "none")
      if event.kind == "spike":
        prefix = "spike_magnitude" if event.scale == "epoch" else "step_spike_magnitude"
        self.writer.write_scalars(event.step, {f"monitor/{prefix}/{event.curve}": event.magnitude})
    self.writer.write_texts(self.step, {"monitor/events": "\n\n".join(
        event.describe() for event in events)})
    if jax.process_index() == 0:
      monitors.append_events(self.workdir, events)

  def _pin_ring(self) -> list[int]:
    """Pins the checkpoints now in the ring (the newest one without a ring); returns their steps.

    Every process calls this with the same checkpoint list, so the pins agree. They reach the
    disk with the next checkpoint's Meta.
    """
    steps = self.checkpointer.all_steps()
    ring = sorted(steps)[-max(self.config.train.ring_epochs, 1):] if steps else []
    self.meta.pinned_steps = sorted(set(self.meta.pinned_steps) | set(ring))
    return ring

  def _log_window(self, window, input_wait_fraction: float) -> None:
    means = self._check_finite(window)
    means["input_wait_fraction"] = input_wait_fraction
    means["steps_per_sec"] = self.display.log(self.step, self.meta.epoch, means)
    self.writer.write_scalars(self.step, means)

  def _check_finite(self, metrics) -> dict[str, float]:
    """Returns the metric means; raises TrainingDivergedError if any is NaN or infinite."""
    if _num_steps(metrics) == 0:
      return {}
    means = {k: float(v) for k, v in metrics.compute().items()}
    if not _all_finite(means):
      raise TrainingDivergedError(
          _diverged_message(means, self.step, self.checkpointer),
          {k: v for k, v in means.items() if not np.isfinite(v)})
    return means

  def _check_state_finite(self) -> None:
    """Raises TrainingDivergedError if the train state contains a NaN or infinity.

    The metrics of a step come from its forward pass, before its update, so the last update of
    an epoch can make weights non-finite while every metric is finite. Each save follows this
    check with no step in between.
    """
    if not bool(_tree_is_finite(self.state)):
      values = {"train_state": float("nan")}
      raise TrainingDivergedError(_diverged_message(values, self.step, self.checkpointer), values)

  def _end_epoch(self, epoch_totals) -> bool:
    """Records the finished epoch, writes samples, curves and summary; returns True if it saved."""
    meta, config = self.meta, self.config
    epoch_means = self._check_finite(epoch_totals)
    meta.wall_times.append(time.perf_counter() - self.epoch_start)
    if epoch_means:
      epoch_means.update(self.family.epoch_metrics(config, epoch_means))
      meta.history.setdefault("epoch", []).append(meta.epoch + 1)
      for name, value in epoch_means.items():
        meta.history.setdefault(name, []).append(value)
      self.writer.write_scalars(self.step, {f"epoch/{k}": v for k, v in epoch_means.items()})
    self.display.end_epoch(meta.epoch, epoch_means, meta.wall_times[-1])
    meta.epoch += 1
    meta.batch_in_epoch = 0
    events = self.monitors.update_curves(epoch_means, "epoch", epoch=meta.epoch, step=self.step)

    last = meta.epoch == self.num_epochs
    if meta.epoch % config.train.sample_every_epochs == 0 or last:
      images = np.asarray(jax.device_get(self.generate(self.state, self.fixed_latents)))
      self.outputs.write_samples(meta.epoch, self.step, images)
      ratio, collapse_events = self.monitors.update_samples(images, meta.epoch, self.step)
      if ratio is not None:
        self.writer.write_scalars(self.step, {"monitor/diversity_ratio": ratio})
      events += collapse_events
    self._record_events(events)
    self.outputs.write_curves(meta.history)
    regular = meta.epoch % config.train.checkpoint_every_epochs == 0 or last
    saved = regular or config.train.ring_epochs > 0
    if saved:
      self._save(f"end of epoch {meta.epoch}", ring_only=not regular)
    self.outputs.write_summary(meta, self.num_epochs, self.step)
    periodic.after_epoch(self)
    self.writer.flush()
    return saved

  def _save(self, reason: str, ring_only: bool) -> None:
    """Saves a checkpoint; a `ring_only` one is deleted once it leaves the ring, unless pinned."""
    meta = self.meta
    meta.monitor = self.monitors.state()
    # Steps that retention has deleted are dropped from the lists, so the Meta stays small.
    on_disk = set(self.checkpointer.all_steps()) | {self.step}
    if ring_only and self.step not in meta.ring_steps:
      meta.ring_steps.append(self.step)
    meta.ring_steps = [step for step in meta.ring_steps if step in on_disk]
    meta.pinned_steps = [step for step in meta.pinned_steps if step in on_disk]
    self.checkpointer.save(self.step, self.state, meta)
    logging.info("Checkpoint at step %d (%s).", self.step, reason)

  def close(self) -> None:
    self.checkpointer.close()
    if self.writer is not None:
      self.writer.close()


def _diverged_message(means: dict[str, float], step: int, checkpointer) -> str:
  bad = ", ".join(f"{k}={v}" for k, v in means.items() if not np.isfinite(v))
  latest = checkpointer.latest_step()
  where = (f"The checkpoints in {checkpointer.directory} (newest: step {latest}) contain only "
           "finite values, but the run may have been diverging before them: check "
           "plots/losses.png."
           if latest is not None else "No checkpoint had been saved yet.")
  return (f"Training diverged before step {step}: {bad}. Nothing non-finite was saved. {where} "
          "Resume with lower learning rates (optim.lr_g, optim.lr_d) or with "
          "--config.train.on_nonfinite=rollback, or start again in a new --workdir with "
          "optim.clip_grad_norm set.")
