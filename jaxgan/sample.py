"""Draws images from a trained run: python -m jaxgan.sample --workdir runs/x --num 1000 --out s/.

Writes --num PNG files (sample_00000.png, ...) or one samples.npz, from any saved checkpoint
step, with the generator in inference mode (BatchNorm with running statistics). samples.npz
stores uint8 `images` [N, S, S, 3] and their `latents`. For a conditional family it also
stores the class of each image in `labels` [N] and the class names in `class_names`, and
`latents` is then z alone. sample_settings.json in --out records the step, seed, weights,
truncation, classes and modes.

With --interpolate K it writes --num GIFs instead, each of K frames, interpolated linearly or
spherically (--mode slerp). For a family whose latents are one array (DCGAN), GIF i runs from
latent i to latent i + 1, so the GIFs join into one path. For a family whose latents are a
pytree (BigGAN-lite: z, class label and weights), GIF i runs from image i drawn with --seed to
image i drawn with --seed + 1: z is interpolated and the class stays fixed.

With --grid PATH.png it writes the run's sample grid instead, the one training writes every
epoch (one row per class for a conditional BigGAN-lite run), and next to it PATH.json with the
step, epoch, weights, truncation and the diversity of each row.

Weights and truncation: BigGAN-lite keeps a moving average (EMA) of G, and --weights ema|raw
and --truncation T replace the run's sample.weights and sample.truncation. The DCGAN family
rejects both, because it keeps no EMA and its generator maps z ~ N(0, I) (or U(-1, 1))
directly. --truncation is accepted only by families whose config has sample.truncation or whose
`Family` defines `truncate(state, latents, truncation) -> latents`.

    python -m jaxgan.sample --workdir runs/biggan_chars32 --weights raw --num 64 --out s/
    python -m jaxgan.sample --workdir runs/biggan_chars32 --truncation 1.0 --grid grid.png

Exit status: 0 on success, 2 for invalid input.
"""

import json
import os
from typing import Any

import numpy as np
from absl import flags

from jaxgan.evaluation import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of the trained run.")
_NUM = flags.DEFINE_integer(
    "num", 64, "Number of images, or of GIFs with --interpolate.")
_OUT = flags.DEFINE_string("out", None, "Output folder, created if missing.")
_FORMAT = flags.DEFINE_enum("format", "png", ["png", "npz"],
                            "png: one file per image; npz: one samples.npz.")
_STEP = flags.DEFINE_string(
    "step", "latest", "Checkpoint step: a saved step number, 'latest' or 'best'.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the latents. With --grid the default is the run's config.seed.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per generator call.")
_WEIGHTS = flags.DEFINE_enum(
    "weights", None, ["ema", "raw"],
    "Generator weights: the moving average (ema) or the trained ones (raw), for families that "
    "keep an EMA (BigGAN-lite). Default: the run's config.sample.weights.")
_TRUNCATION = flags.DEFINE_float(
    "truncation", None,
    "Truncation of the latents, for families that support it (BigGAN-lite: redraw latent "
    "values with |z| above this threshold, 0 = off). Default: the run's config.sample.truncation.")
_INTERPOLATE = flags.DEFINE_integer(
    "interpolate", 0, "Frames per interpolation GIF, at least 2 (0 = write single images).")
_MODE = flags.DEFINE_enum("mode", "linear", ["linear", "slerp"],
                          "Interpolation between latents: linear or spherical (slerp).")
_FRAME_MS = flags.DEFINE_integer("frame_ms", 100, "Display time of each GIF frame, in ms.")
_GRID = flags.DEFINE_string(
    "grid", None,
    "Write the run's sample grid to this .png file and its record to the same name with "
    ".json, in place of --out.")
_COLUMNS = flags.DEFINE_integer(
    "columns", None,
    "Images per row of --grid, for families whose config has sample.grid_columns "
    "(BigGAN-lite). Default: the run's value.")

# Flags that set how --out is written, so --grid rejects them.
_OUT_ONLY_FLAGS = (_OUT, _NUM, _FORMAT, _BATCH_SIZE, _INTERPOLATE, _MODE, _FRAME_MS)


def _check_flags() -> None:
  if not _WORKDIR.value or not (_OUT.value or _GRID.value):
    cli.exit_with_error(
        "--workdir and either --out or --grid are required, for example python -m jaxgan.sample "
        "--workdir runs/x --num 64 --out samples/.")
  if _TRUNCATION.value is not None and _TRUNCATION.value < 0:
    cli.exit_with_error(f"--truncation must be >= 0 (0 = off), got {_TRUNCATION.value}.")
  if _GRID.value:
    _check_grid_flags()
    return
  cli.check_output_folder("--out", _OUT.value)
  if _COLUMNS.present:
    cli.exit_with_error("--columns sets the shape of --grid. Remove it, or pass --grid PATH.png.")
  if _NUM.value < 1:
    cli.exit_with_error(f"--num must be at least 1, got {_NUM.value}.")
  if _BATCH_SIZE.value < 1:
    cli.exit_with_error(f"--batch_size must be at least 1, got {_BATCH_SIZE.value}.")
  if _INTERPOLATE.value == 1 or _INTERPOLATE.value < 0:
    cli.exit_with_error(
        f"--interpolate must be 0 (off) or at least 2 frames, got {_INTERPOLATE.value}.")
  if _FRAME_MS.value < 1:
    cli.exit_with_error(f"--frame_ms must be at least 1, got {_FRAME_MS.value}.")


def _check_grid_flags() -> None:
  if not _GRID.value.lower().endswith(".png"):
    cli.exit_with_error(f"--grid must name a .png file, got {_GRID.value!r}.")
  if os.path.isdir(_GRID.value):
    cli.exit_with_error(
        f"--grid {_GRID.value} is a folder; pass a .png file path, such as "
        f"{os.path.join(_GRID.value, 'grid.png')}.")
  cli.check_output_folder("--grid folder", os.path.dirname(_GRID.value) or ".")
  conflicting = [f"--{holder.name}" for holder in _OUT_ONLY_FLAGS if holder.present]
  if conflicting:
    if len(conflicting) == 1:
      names, verb, pronoun = conflicting[0], "does", "it"
    else:
      names, verb, pronoun = (f"{', '.join(conflicting[:-1])} and {conflicting[-1]}", "do",
                              "them")
    cli.exit_with_error(
        f"--grid writes one fixed grid, so {names} {verb} not apply; remove {pronoun}, or drop "
        "--grid to write --num images to --out.")
  if _COLUMNS.value is not None and _COLUMNS.value < 1:
    cli.exit_with_error(f"--columns must be at least 1, got {_COLUMNS.value}.")


def _class_names(config: Any) -> list[str] | None:
  """Returns the class names of a conditional run in label order, None for an unconditional one.

  Classes without a name in data.class_names are named by their label.
  """
  num_classes = config.model.get("num_classes") or 0
  if not num_classes:
    return None
  names = [name.strip() for name in str(config.data.get("class_names") or "").split(",")
           if name.strip()]
  return names if len(names) == num_classes else [str(label) for label in range(num_classes)]


def _npz_arrays(latents: Any, class_names: list[str] | None) -> dict[str, np.ndarray]:
  """Returns the latent arrays that samples.npz stores: `latents`, and for a conditional run
  `labels` and `class_names`. Other per-image leaves of a latent dict keep their key."""
  if not isinstance(latents, dict):
    return {"latents": latents}
  arrays = {}
  for key, leaf in latents.items():
    if np.ndim(leaf) == 0:
      continue  # Shared by all images, such as use_ema, and recorded in sample_settings.json.
    if key == "label":
      if class_names is not None:
        arrays["labels"] = leaf
    else:
      arrays["latents" if key == "z" else key] = leaf
  if class_names is not None:
    arrays["class_names"] = np.asarray(class_names)
  return arrays


def _labels(latents: Any) -> list[int] | None:
  if isinstance(latents, dict) and np.ndim(latents.get("label")):
    return np.asarray(latents["label"]).tolist()
  return None


def _write_grid(run: Any) -> None:
  from jaxgan.evaluation import grid  # pylint: disable=g-import-not-at-top

  if _COLUMNS.value is not None:
    run = grid.with_grid_columns(run, _COLUMNS.value)
  seed = _SEED.value if _SEED.present else run.config.seed
  record = grid.write(run, _GRID.value, seed)
  print(f"Wrote a {record['grid_rows']}x{record['grid_columns']} grid from step {run.step} "
        f"(epoch {run.epoch}, {record['weights']} weights) of {run.workdir} to {_GRID.value} "
        f"and {grid.record_path(_GRID.value)}")


def _write_samples(run: Any, draw: Any) -> None:
  """Writes the images or GIFs to --out and sample_settings.json; `draw(num, seed)` returns
  the latents of `num` images as NumPy arrays."""
  from jaxgan import plots  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import interpolation  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import runs  # pylint: disable=g-import-not-at-top

  num, seed, out = _NUM.value, _SEED.value, _OUT.value
  class_names = _class_names(run.config)
  sampler = runs.Sampler(run.family, run.state, _BATCH_SIZE.value)
  os.makedirs(out, exist_ok=True)
  settings = {**runs.base_settings(run, seed), "num": num, "classes": class_names,
              "format": "gif" if _INTERPOLATE.value else _FORMAT.value,
              "interpolate_frames": _INTERPOLATE.value,
              "interpolate_mode": _MODE.value if _INTERPOLATE.value else None}

  if _INTERPOLATE.value:
    starts = draw(num + 1, seed)
    if isinstance(starts, np.ndarray):
      starts, ends = starts[:-1], starts[1:]
    else:
      starts, ends = draw(num, seed), draw(num, seed + 1)
    # NOTE: slerp frames between two truncated z can exceed the truncation threshold, up to
    # 1 / cos(angle / 2) times it (1.41 for orthogonal z), because slerp's weights sum above 1.
    for index in range(num):
      try:
        path_latents = interpolation.interpolate_image(starts, ends, index, _INTERPOLATE.value,
                                                       _MODE.value)
      except ValueError as error:
        raise runs.RunError(
            f"The {run.config.model.family} latents cannot be interpolated: {error}") from None
      frames = runs.to_uint8(sampler(path_latents))
      name = f"interpolation_{_MODE.value}_{index:04d}.gif"
      plots.save_gif(list(frames), os.path.join(out, name), duration_ms=_FRAME_MS.value)
    settings["labels"] = _labels(starts) if class_names else None
    written = f"{num} GIFs of {_INTERPOLATE.value} frames ({_MODE.value})"
  else:
    latents = draw(num, seed)
    images = runs.to_uint8(sampler(latents))
    if _FORMAT.value == "npz":
      np.savez(os.path.join(out, "samples.npz"), images=images,
               **_npz_arrays(latents, class_names))
    else:
      for index, image in enumerate(images):
        plots.save_png(image, os.path.join(out, f"sample_{index:05d}.png"))
    settings["labels"] = _labels(latents) if class_names else None
    written = f"{len(images)} images ({_FORMAT.value})"

  if _TRUNCATION.value is not None and getattr(run.family, "truncate", None) is not None:
    settings["truncation"] = _TRUNCATION.value
  with open(os.path.join(out, "sample_settings.json"), "w") as f:
    json.dump(settings, f, indent=2, sort_keys=True)
  print(f"Wrote {written} from step {run.step} (epoch {run.epoch}) of {run.workdir} to {out}")


def main(argv: list[str]) -> None:
  del argv
  _check_flags()
  # Imported here so that --help and flag errors do not pay for importing JAX.
  import jax  # pylint: disable=g-import-not-at-top

  from jaxgan import families  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import runs  # pylint: disable=g-import-not-at-top

  # Checked before the restore, which takes most of the start-up time.
  config = runs.load_config(_WORKDIR.value)
  runs.check_sampling_options(config, _WEIGHTS.value, _TRUNCATION.value)
  truncate = getattr(families.get(config.model.family), "truncate", None)
  if not _GRID.value and not runs.draws_images_from_latents(config):
    cli.exit_with_error(
        f"The {config.model.family} family draws no images from latents, so --num images "
        "cannot be drawn. Pass --grid PATH.png for its sample grid.")

  run = runs.load_run(_WORKDIR.value, _STEP.value)
  # A family with a `truncate` hook truncates drawn latents, so its config keeps its value.
  run = runs.with_sampling_options(run, _WEIGHTS.value,
                                   _TRUNCATION.value if truncate is None else None)
  if _GRID.value:
    _write_grid(run)
    return

  def draw(num: int, seed: int) -> Any:
    latents = jax.tree.map(np.asarray, runs.latents(run, num, seed))
    if _TRUNCATION.value is not None and truncate is not None:
      latents = jax.tree.map(np.asarray, truncate(run.state, latents, _TRUNCATION.value))
    return latents

  _write_samples(run, draw)


if __name__ == "__main__":
  cli.run(main)
