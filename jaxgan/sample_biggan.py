"""Draws a sample grid from the newest checkpoint of a BigGAN-lite run.

    python -m jaxgan.sample_biggan --workdir runs/biggan_chars32 --weights ema --truncation 1.0 \
        --out runs/biggan_chars32/grid_ema.png

A conditional grid has one row per class. Next to the PNG, a JSON file with the same name records
the weights, the truncation, the checkpoint step and, per row, the mean pairwise distance of its
images (`jaxgan.evaluation.diversity`). Exit status 2 for an invalid workdir or option.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Defines the command-line flags; only when run as a program, so that importing this module
  next to jaxgan.main (which also defines --workdir) works."""
  flags.DEFINE_string("workdir", None, "Workdir of a BigGAN-lite run (with config.json).")
  flags.DEFINE_enum("weights", "ema", ["ema", "raw"],
                    "Generator weights: the moving average (ema) or the trained ones.")
  flags.DEFINE_float(
      "truncation", 0.0, "Redraw latent values with |z| above this until none is (0 = off).")
  flags.DEFINE_integer("columns", 8, "Images per row.")
  flags.DEFINE_string("out", None, "Output PNG path; the JSON record goes next to it.")


def _load_config(workdir: str, weights: str, truncation: float, columns: int):
  import ml_collections  # pylint: disable=g-import-not-at-top

  from jaxgan.errors import ConfigError  # pylint: disable=g-import-not-at-top

  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise ConfigError(f"No config.json in {workdir}: pass the --workdir of a BigGAN-lite run.")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if config.model.family != "biggan":
    raise ConfigError(f"The run in {workdir} is a {config.model.family!r} run, not a BigGAN-lite "
                      "one; pass the --workdir of a BigGAN-lite run.")
  config.sample.weights = weights
  config.sample.truncation = truncation
  config.sample.grid_columns = columns
  return config


def sample(workdir: str, out: str, *, weights: str = "ema", truncation: float = 0.0,
           columns: int = 8) -> dict:
  """Writes the grid to `out` and its record to `out` with .json; returns the record.

  `weights` ("ema" or "raw"), `truncation` and `columns` replace the run's sample.* values.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxgan import checkpoint  # pylint: disable=g-import-not-at-top
  from jaxgan import plots  # pylint: disable=g-import-not-at-top
  from jaxgan.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import diversity  # pylint: disable=g-import-not-at-top
  from jaxgan.families import biggan  # pylint: disable=g-import-not-at-top

  config = _load_config(workdir, weights, truncation, columns)
  family = biggan.FAMILY
  family.validate(config)
  checkpointer = checkpoint.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  try:
    step = checkpointer.latest_step()
    if step is None:
      raise ConfigError(f"No checkpoint in {workdir}/checkpoints yet; wait for the first one.")
    # The step count per epoch only sets learning-rate schedules, which sampling does not use.
    state, meta = checkpointer.restore(step, family.init_state(config, steps_per_epoch=1))
  finally:
    checkpointer.close()

  rows, columns = family.grid_shape(config)
  latents = family.fixed_latents(config, rows * columns)
  images = np.asarray(jax.jit(family.generate)(state, latents))
  plots.save_png(plots.make_grid(images, rows, columns), out)

  per_row = images.reshape(rows, columns, *images.shape[1:])
  record = {
      "workdir": os.path.abspath(workdir), "step": step, "epoch": meta.epoch,
      **family.sample_info(config),
      "diversity_all": diversity.mean_pairwise_distance(images),
  }
  if columns > 1:
    record["diversity_per_row"] = [diversity.mean_pairwise_distance(row) for row in per_row]
  with open(os.path.splitext(out)[0] + ".json", "w") as f:
    json.dump(record, f, indent=2)
  return record


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.workdir or not FLAGS.out:
    sys.stderr.write("Error: --workdir and --out are required.\n")
    sys.exit(2)
  from jaxgan.errors import JaxganError  # pylint: disable=g-import-not-at-top

  try:
    record = sample(FLAGS.workdir, FLAGS.out, weights=FLAGS.weights,
                    truncation=FLAGS.truncation, columns=FLAGS.columns)
  except JaxganError as error:
    logging.error("%s", error)
    sys.exit(2)
  print(json.dumps(record, indent=2))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
