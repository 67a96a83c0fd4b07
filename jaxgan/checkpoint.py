"""Checkpoints of a run: the train state (arrays) and its metadata (JSON), via Orbax.

Layout: workdir/checkpoints/<step>/{state,meta}. Orbax writes each checkpoint to a temporary
folder and renames it when complete, so a run killed during a save leaves the previous checkpoints
intact and the next start resumes from the newest complete one.
"""

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging


@dataclasses.dataclass
class Meta:
  """Run metadata, besides the arrays, that a resumed run needs to continue exactly.

  Attributes:
    epoch: the epoch (0-based) that the next step belongs to.
    batch_in_epoch: the index of the next batch in that epoch's order.
    train_key: raw data of the training PRNG key (`jax.random.key_data`), as a list of ints.
    config: the run's config as a JSON-compatible dict.
    history: per-epoch metric means, lists indexed by epoch, for the curves.
    wall_times: seconds spent in each finished epoch.
    lr_scale: factor on both learning rates, lowered by each rollback after a non-finite loss.
    rollbacks: number of rollbacks so far (see train.on_nonfinite).
    monitor: state of the spike and collapse monitors (`jaxgan.monitors.Monitors.state`).
    ring_steps: steps of checkpoints saved only for the ring of recent epochs. Retention deletes
      them once ring_epochs newer checkpoints exist, unless they are pinned. The other
      checkpoints count towards keep_checkpoints.
    pinned_steps: steps of checkpoints that a monitor event pinned; retention never deletes them.
    epoch_totals: running totals of the unfinished epoch at a mid-epoch stop, so that the resumed
      epoch's means and wall time cover all its batches: {"sums": {metric: sum}, "counts":
      {metric: number of steps}, "seconds": wall time so far}. Empty at an epoch's end.

  The last six fields have defaults so that checkpoints written before they existed restore.
  """

  epoch: int
  batch_in_epoch: int
  train_key: list[int]
  config: dict[str, Any]
  history: dict[str, list[float]]
  wall_times: list[float]
  lr_scale: float = 1.0
  rollbacks: int = 0
  monitor: dict[str, Any] = dataclasses.field(default_factory=dict)
  ring_steps: list[int] = dataclasses.field(default_factory=list)
  pinned_steps: list[int] = dataclasses.field(default_factory=list)
  epoch_totals: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RetentionPolicy:
  """Orbax preservation policy: the ring, the newest regular checkpoints, and pinned ones.

  A checkpoint survives if it is among the newest `ring` checkpoints (the newest one always,
  because a resume starts from it), among the newest `keep` checkpoints whose step is not in
  `ring_steps`, or in `pinned_steps`. The trainer updates the two step sets from the Meta before
  each save, and Orbax applies the policy right after the save.
  """

  ring: int
  keep: int
  ring_steps: set[int] = dataclasses.field(default_factory=set)
  pinned_steps: set[int] = dataclasses.field(default_factory=set)

  def should_preserve(self, checkpoints: Sequence[Any], *, context: Any) -> list[bool]:
    """Returns one flag per checkpoint; Orbax passes them sorted by step, oldest first."""
    del context
    steps = [info.step for info in checkpoints]
    newest = set(steps[-max(self.ring, 1):])
    regular = [step for step in steps if step not in self.ring_steps]
    kept_regular = set(regular[-self.keep:]) if self.keep > 0 else set()
    return [step in newest or step in kept_regular or step in self.pinned_steps
            for step in steps]


class Checkpointer:
  """Saves and restores (state, Meta) under workdir/checkpoints, applying `RetentionPolicy`.

  `keep` and `ring` are the policy's limits; with the defaults every save counts towards `keep`
  and the newest `keep` checkpoints stay. A `read_only` checkpointer never creates, saves or
  deletes anything, so it can read the workdir of a run that is still training. A writable one
  deletes the temporary folders of unfinished saves when it opens, so code that reads another
  run's checkpoints while that run may be saving must pass read_only=True.
  """

  def __init__(self, workdir: str | os.PathLike, keep: int, ring: int = 0,
               read_only: bool = False):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.retention = RetentionPolicy(ring=ring, keep=keep)
    if read_only:
      # Orbax warns about every option that read_only overrides, so they are passed as it sets them.
      options = ocp.CheckpointManagerOptions(
          read_only=True, create=False, save_interval_steps=0, enable_async_checkpointing=False)
    else:
      options = ocp.CheckpointManagerOptions(
          preservation_policy=self.retention, create=True, enable_async_checkpointing=False,
          # Removes the temporary folders of saves that a kill or a full disk interrupted.
          cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: Meta) -> None:
    """Saves a checkpoint for train step `step`; all processes must call this together.

    A checkpoint that already exists for `step` is kept as it is. It contains the same arrays,
    and replacing it would leave a moment without it.
    """
    if step in self._manager.all_steps():
      logging.info("A checkpoint for step %d already exists in %s; keeping it.", step,
                   self.directory)
      return
    self.retention.ring_steps = set(meta.ring_steps)
    self.retention.pinned_steps = set(meta.pinned_steps)
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dataclasses.asdict(meta))),
        force=True)
    self._manager.wait_until_finished()
    logging.info("Saved checkpoint %s/%d (%d epoch(s) done, %d batch(es) into the next)",
                 self.directory, step, meta.epoch, meta.batch_in_epoch)

  def restore(self, step: int, target_state: Any) -> tuple[Any, Meta]:
    """Restores the checkpoint of `step` into arrays shaped and sharded like `target_state`."""
    abstract_state = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return restored["state"], Meta(**restored["meta"])

  def restore_meta(self, step: int) -> Meta:
    """Restores only the metadata of the checkpoint of `step`."""
    restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return Meta(**restored["meta"])

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
