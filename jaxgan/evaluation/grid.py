"""Draws a restored run's sample grid: the grid that the trainer writes every epoch.

The grid comes from the family's `fixed_latents` and `grid_shape`, so a conditional BigGAN-lite
grid has one row per class. A JSON record next to the PNG stores how it was drawn and the
diversity of its rows.
"""

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgan import plots
from jaxgan.evaluation import diversity
from jaxgan.evaluation import runs


def with_grid_columns(run: runs.Run, columns: int) -> runs.Run:
  """Returns `run` with config.sample.grid_columns set to `columns`.

  Raises:
    RunError: for a family whose config has no sample.grid_columns, such as DCGAN (5 x 5).
  """
  if "grid_columns" not in (run.config.get("sample") or {}):
    raise runs.RunError(
        f"The {run.config.model.family} family has a fixed grid shape "
        f"{run.family.grid_shape(run.config)} (rows, columns). Remove --columns.")
  config = ml_collections.ConfigDict(run.config.to_dict())
  config.sample.grid_columns = columns
  run.family.validate(config)
  return dataclasses.replace(run, config=config)


def draw(run: runs.Run, seed: int) -> tuple[np.ndarray, int, int]:
  """Returns the grid's float32 images [rows * columns, S, S, 3] in [-1, 1], rows and columns.

  The latents come from config.seed set to `seed`, so the run's own seed gives the grid that
  training wrote for this checkpoint.
  """
  config = ml_collections.ConfigDict(run.config.to_dict())
  config.seed = seed
  rows, columns = run.family.grid_shape(config)
  latents = run.family.fixed_latents(config, rows * columns)
  images = np.asarray(jax.jit(run.family.generate)(run.state, latents), np.float32)
  return images, rows, columns


def record_path(png_path: str) -> str:
  """Returns the path of the JSON record that goes next to the grid `png_path`."""
  return os.path.splitext(png_path)[0] + ".json"


def write(run: runs.Run, png_path: str, seed: int) -> dict[str, Any]:
  """Writes the grid to `png_path` and its record to `record_path(png_path)`; returns the record.

  The record has the base settings of `runs.base_settings`, the family's `sample_info` and the
  grid shape. For BigGAN-lite, `sample_info` adds the class of each row. The diversity values
  are `diversity.mean_pairwise_distance` of all images and of each row (when rows have two or
  more images), computed on the generator's output in [-1, 1].
  """
  images, rows, columns = draw(run, seed)
  plots.save_png(plots.make_grid(images, rows, columns), png_path)

  record = {
      **runs.base_settings(run, seed),
      **run.family.sample_info(run.config),
      "grid_rows": rows,
      "grid_columns": columns,
      "diversity_all": diversity.mean_pairwise_distance(images),
  }
  if columns > 1:
    per_row = images.reshape(rows, columns, *images.shape[1:])
    record["diversity_per_row"] = [diversity.mean_pairwise_distance(row) for row in per_row]
  with open(record_path(png_path), "w") as f:
    json.dump(record, f, indent=2)
  return record
