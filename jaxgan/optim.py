"""Optimizers and learning-rate schedules, one of each per network.

Schedules are defined in epochs in the config and converted to steps here, because the number of
steps per epoch depends on the dataset and the batch size.
"""

import functools
from typing import Any, Callable, NamedTuple

import ml_collections
import optax


def make_schedule(
    optim: ml_collections.ConfigDict,
    kind: str,
    peak_lr: float,
    steps_per_epoch: int,
    num_epochs: int,
) -> optax.Schedule:
  """Returns the learning rate as a function of the step: warm-up, then the named schedule.

  NOTE: "cosine" and "linear" end at `num_epochs`, so raising train.num_epochs on a finished run
  changes the remaining rates of those two schedules.
  """
  warmup_steps = int(round(optim.warmup_epochs * steps_per_epoch))
  total_steps = max(num_epochs * steps_per_epoch - warmup_steps, 1)

  if kind == "constant":
    main = optax.constant_schedule(peak_lr)
  elif kind == "step":
    main = optax.exponential_decay(
        peak_lr, transition_steps=max(int(round(optim.step_decay_epochs * steps_per_epoch)), 1),
        decay_rate=optim.step_decay_factor, staircase=True)
  elif kind == "cosine":
    main = optax.cosine_decay_schedule(peak_lr, decay_steps=total_steps)
  elif kind == "linear":
    start = max(int(round(optim.decay_start_epoch * steps_per_epoch)) - warmup_steps, 0)
    main = optax.join_schedules(
        [optax.constant_schedule(peak_lr),
         optax.linear_schedule(peak_lr, 0.0, max(total_steps - start, 1))],
        boundaries=[start])
  else:
    raise ValueError(f"unknown schedule {kind!r}")

  if warmup_steps == 0:
    return main
  warmup = optax.linear_schedule(0.0, peak_lr, warmup_steps)
  return optax.join_schedules([warmup, main], boundaries=[warmup_steps])


def make_optimizer(
    optim: ml_collections.ConfigDict, schedule: optax.Schedule
) -> optax.GradientTransformation:
  """Returns Adam or SGD with momentum on `schedule`, after optional global-norm clipping."""
  if optim.optimizer == "adam":
    base = optax.adam(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps)
  elif optim.optimizer == "sgd":
    base = optax.sgd(schedule, momentum=optim.momentum)
  else:
    raise ValueError(f"unknown optimizer {optim.optimizer!r}")
  if optim.clip_grad_norm > 0:
    return optax.chain(optax.clip_by_global_norm(optim.clip_grad_norm), base)
  return base


class GanOptimizers(NamedTuple):
  """The optimizers and learning-rate schedules of a generator G and a discriminator D."""

  tx_g: optax.GradientTransformation
  tx_d: optax.GradientTransformation
  schedule_g: optax.Schedule
  schedule_d: optax.Schedule


def make_gan_optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int) -> GanOptimizers:
  """Builds G's schedule from optim.schedule_g and optim.lr_g, D's from optim.schedule_d and
  optim.lr_d, and one optimizer of kind optim.optimizer on each."""
  schedule_g = make_schedule(
      config.optim, config.optim.schedule_g, config.optim.lr_g, steps_per_epoch,
      config.train.num_epochs)
  schedule_d = make_schedule(
      config.optim, config.optim.schedule_d, config.optim.lr_d, steps_per_epoch,
      config.train.num_epochs)
  return GanOptimizers(
      tx_g=make_optimizer(config.optim, schedule_g), tx_d=make_optimizer(config.optim, schedule_d),
      schedule_g=schedule_g, schedule_d=schedule_d)


def bind_gan_optimizers(
    train_step: Callable[..., Any], config: ml_collections.ConfigDict, steps_per_epoch: int
) -> Callable[..., Any]:
  """Returns `train_step` with `config` and the `make_gan_optimizers` fields bound as keywords.

  The GAN families' steps take keyword arguments config, tx_g, tx_d, schedule_g and schedule_d.
  """
  return functools.partial(
      train_step, config=config, **make_gan_optimizers(config, steps_per_epoch)._asdict())
