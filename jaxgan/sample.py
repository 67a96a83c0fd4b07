"""Draws images from a trained run: python -m jaxgan.sample --workdir runs/x --num 1000 --out s/.

Writes --num PNG files (sample_00000.png, ...) or one samples.npz (uint8 images [N, S, S, 3] and
their latents), from any saved checkpoint step, with the generator in inference mode (BatchNorm
with running statistics). With --interpolate K it writes --num GIFs instead, each of K frames
between two consecutive latents, interpolated linearly or spherically (--mode slerp).
sample_settings.json in --out records the step, seed and modes.

Truncation: the DCGAN family has none, because its generator maps z ~ N(0, I) (or U(-1, 1))
directly. --truncation is accepted only by families whose config has sample.truncation or whose
`Family` defines `truncate(state, latents, truncation) -> latents`.

Exit status: 0 on success, 2 for invalid input.
"""

import json
import os

import numpy as np
from absl import flags

from jaxgan.evaluation import cli
from jaxgan.evaluation.interpolation import interpolate

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of the trained run.")
_NUM = flags.DEFINE_integer(
    "num", 64, "Number of images, or of GIFs with --interpolate.")
_OUT = flags.DEFINE_string("out", None, "Output folder, created if missing.")
_FORMAT = flags.DEFINE_enum("format", "png", ["png", "npz"],
                            "png: one file per image; npz: one samples.npz.")
_STEP = flags.DEFINE_string(
    "step", "latest", "Checkpoint step: a saved step number, 'latest' or 'best'.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the latents.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per generator call.")
_TRUNCATION = flags.DEFINE_float(
    "truncation", None, "Truncation of the latents, for families that support it (not DCGAN).")
_INTERPOLATE = flags.DEFINE_integer(
    "interpolate", 0, "Frames per interpolation GIF, at least 2 (0 = write single images).")
_MODE = flags.DEFINE_enum("mode", "linear", ["linear", "slerp"],
                          "Interpolation between latents: linear or spherical (slerp).")
_FRAME_MS = flags.DEFINE_integer("frame_ms", 100, "Display time of each GIF frame, in ms.")


def _check_flags() -> None:
  if not _WORKDIR.value or not _OUT.value:
    cli.exit_with_error(
        "--workdir and --out are required, for example python -m jaxgan.sample --workdir runs/x "
        "--num 64 --out samples/.")
  if _NUM.value < 1:
    cli.exit_with_error(f"--num must be at least 1, got {_NUM.value}.")
  if _BATCH_SIZE.value < 1:
    cli.exit_with_error(f"--batch_size must be at least 1, got {_BATCH_SIZE.value}.")
  if _INTERPOLATE.value == 1 or _INTERPOLATE.value < 0:
    cli.exit_with_error(
        f"--interpolate must be 0 (off) or at least 2 frames, got {_INTERPOLATE.value}.")
  if _FRAME_MS.value < 1:
    cli.exit_with_error(f"--frame_ms must be at least 1, got {_FRAME_MS.value}.")


def main(argv: list[str]) -> None:
  del argv
  _check_flags()
  # Imported here so that --help and flag errors do not pay for importing JAX.
  from jaxgan import plots  # pylint: disable=g-import-not-at-top
  from jaxgan.evaluation import runs  # pylint: disable=g-import-not-at-top

  from jaxgan import families  # pylint: disable=g-import-not-at-top

  # Checked before the restore, which takes most of the start-up time.
  config = runs.load_config(_WORKDIR.value)
  runs.check_sampling_options(config, truncation=_TRUNCATION.value)
  truncate = getattr(families.get(config.model.family), "truncate", None)

  run = runs.load_run(_WORKDIR.value, _STEP.value)
  if truncate is None:
    run = runs.with_sampling_options(run, truncation=_TRUNCATION.value)
  latents = np.asarray(runs.latents(run, _NUM.value + (1 if _INTERPOLATE.value else 0),
                                    _SEED.value))
  if _TRUNCATION.value is not None and truncate is not None:
    latents = np.asarray(truncate(run.state, latents, _TRUNCATION.value))

  sampler = runs.Sampler(run.family, run.state, _BATCH_SIZE.value)
  out = _OUT.value
  os.makedirs(out, exist_ok=True)
  if _INTERPOLATE.value:
    for index in range(_NUM.value):
      path_latents = interpolate(latents[index], latents[index + 1], _INTERPOLATE.value,
                                 _MODE.value)
      frames = runs.to_uint8(sampler(path_latents))
      name = f"interpolation_{_MODE.value}_{index:04d}.gif"
      plots.save_gif(list(frames), os.path.join(out, name), duration_ms=_FRAME_MS.value)
    written = f"{_NUM.value} GIFs of {_INTERPOLATE.value} frames ({_MODE.value})"
  else:
    images = runs.to_uint8(sampler(latents))
    if _FORMAT.value == "npz":
      np.savez(os.path.join(out, "samples.npz"), images=images, latents=latents)
    else:
      for index, image in enumerate(images):
        plots.save_png(image, os.path.join(out, f"sample_{index:05d}.png"))
    written = f"{len(images)} images ({_FORMAT.value})"

  settings = {**runs.base_settings(run, _SEED.value), "num": _NUM.value,
              "format": "gif" if _INTERPOLATE.value else _FORMAT.value,
              "interpolate_frames": _INTERPOLATE.value,
              "interpolate_mode": _MODE.value if _INTERPOLATE.value else None,
              "truncation": _TRUNCATION.value}
  with open(os.path.join(out, "sample_settings.json"), "w") as f:
    json.dump(settings, f, indent=2, sort_keys=True)
  print(f"Wrote {written} from step {run.step} (epoch {run.epoch}) of {run.workdir} to {out}")


if __name__ == "__main__":
  cli.run(main)
