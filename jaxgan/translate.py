"""Translates images with the generators of a trained CycleGAN run.

    python -m jaxgan.translate --workdir runs/cyclegan --input photo.jpg --out out.png
    python -m jaxgan.translate --workdir runs/cyclegan --input photos/ --out translated/ \
        --direction b2a

Each image is center-cropped to a square and resized to the run's image size. Then G (a2b) or F
(b2a) of the newest checkpoint translates it, and the output is a PNG at that size. A folder input
translates every PNG and JPEG file directly inside it into `--out`/<name>.png. Exit status 2, with
one line on stderr, for a missing workdir or checkpoint and for unreadable images.
"""

import json
import os
from pathlib import Path

from absl import app
from absl import flags
from absl import logging

def _define_flags() -> dict[str, flags.FlagHolder]:
  """Defines the command-line flags, only when run as a program, so that importing this module
  next to jaxgan.main (which also defines --workdir) works."""
  return {
      "workdir": flags.DEFINE_string(
          "workdir", None, "Workdir of a finished or running CycleGAN run."),
      "input": flags.DEFINE_string("input", None, "Image file, or folder of PNG and JPEG files."),
      "out": flags.DEFINE_string(
          "out", None, "Output PNG file for a file input, or output folder for a folder input."),
      "direction": flags.DEFINE_enum(
          "direction", "a2b", ["a2b", "b2a"], "a2b translates with G (domain A to B), b2a with F."),
  }


_FLAGS: dict[str, flags.FlagHolder] = {}


def load_generator(workdir: str | os.PathLike, direction: str):
  """Restores the newest checkpoint of `workdir`; returns (translate function, image size).

  The function maps float32 images [N, s, s, 3] in [-1, 1] to translated images.

  Raises:
    ConfigError: if the workdir, its config.json or its checkpoints are missing, or the run is
      not a CycleGAN run.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top

  from jaxgan import checkpoint  # pylint: disable=g-import-not-at-top
  from jaxgan import families  # pylint: disable=g-import-not-at-top
  from jaxgan.errors import ConfigError  # pylint: disable=g-import-not-at-top

  workdir = Path(workdir)
  config_path = workdir / "config.json"
  if not workdir.is_dir():
    raise ConfigError(f"Workdir {workdir} does not exist. Pass the --workdir of a CycleGAN run.")
  if not config_path.is_file():
    raise ConfigError(
        f"Workdir {workdir} contains no config.json, so it is not a jaxgan run. Pass the "
        "--workdir of a CycleGAN run.")
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  if config.model.family != "cyclegan":
    raise ConfigError(
        f"Workdir {workdir} contains a {config.model.family!r} run, but translation needs a "
        "'cyclegan' run. Pass the --workdir of a CycleGAN run.")
  if not (workdir / "checkpoints").is_dir():
    raise ConfigError(
        f"Workdir {workdir} contains no checkpoints yet. Wait for the run to save one (at the end "
        "of an epoch) or pass another --workdir.")

  checkpointer = checkpoint.Checkpointer(workdir, keep=1, read_only=True)
  try:
    step = checkpointer.latest_step()
    if step is None:
      raise ConfigError(
          f"Workdir {workdir} contains no checkpoints yet. Wait for the run to save one (at the "
          "end of an epoch) or pass another --workdir.")
    family = families.get("cyclegan")
    state, _ = checkpointer.restore(step, family.init_state(config, steps_per_epoch=1))
  finally:
    checkpointer.close()
  logging.info("Restored %s/checkpoints/%d.", workdir, step)

  from jaxgan.families import cyclegan  # pylint: disable=g-import-not-at-top

  params = state.g_params if direction == "a2b" else state.f_params

  @jax.jit
  def translate(images):
    return cyclegan.translate(state.generator_graphdef, params, images)

  return translate, config.data.image_size


def _input_files(input_path: Path, out: Path) -> list[tuple[Path, Path]]:
  """Returns (input file, output file) pairs."""
  from jaxgan.data import images  # pylint: disable=g-import-not-at-top
  from jaxgan.errors import DataError  # pylint: disable=g-import-not-at-top

  if input_path.is_dir():
    paths, _ = images.list_image_files(input_path)
    if not paths:
      raise DataError(
          f"No image files ({', '.join(images.IMAGE_EXTENSIONS)}) found in {input_path}. Pass a "
          "folder that contains PNG or JPEG files, or one image file.")
    return [(path, out / f"{path.name.split('.', 1)[0]}.png") for path in paths]
  if not input_path.exists():
    raise DataError(f"Input {input_path} does not exist. Pass an image file or a folder.")
  return [(input_path, out)]


def translate_files(workdir: str, input_path: str, out: str, direction: str) -> list[Path]:
  """Translates a file or a folder of files; returns the output paths written.

  Raises:
    JaxganError: for a missing workdir or checkpoint, a missing input, or an unreadable image.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxgan import plots  # pylint: disable=g-import-not-at-top
  from jaxgan.data import images  # pylint: disable=g-import-not-at-top
  from jaxgan.errors import DataError  # pylint: disable=g-import-not-at-top

  pairs = _input_files(Path(input_path), Path(out))
  translate, size = load_generator(workdir, direction)
  written = []
  for source, target in pairs:
    try:
      pixels = images.read_image(source, size)
    except images.UnreadableImageError as error:
      raise DataError(
          f"Cannot read image {source}: {error.reason}. Pass a PNG or JPEG image.") from error
    translated = np.asarray(translate(pixels[None].astype(np.float32) / 127.5 - 1.0))[0]
    result = np.clip(np.round((translated + 1.0) * 127.5), 0, 255).astype(np.uint8)
    plots.save_png(result, target)
    written.append(target)
  return written


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  from jaxgan import cli  # pylint: disable=g-import-not-at-top
  from jaxgan.errors import JaxganError  # pylint: disable=g-import-not-at-top

  for flag in (_FLAGS["workdir"], _FLAGS["input"], _FLAGS["out"]):
    if not flag.value:
      cli.exit_with_error(f"missing --{flag.name}. Run with --help for the usage.")
  logging.get_absl_handler().addFilter(cli.QuietLibraryFilter())
  try:
    written = translate_files(_FLAGS["workdir"].value, _FLAGS["input"].value,
                              _FLAGS["out"].value, _FLAGS["direction"].value)
  except JaxganError as error:
    cli.exit_with_error(str(error))
  for path in written:
    print(path)


if __name__ == "__main__":
  _FLAGS.update(_define_flags())
  app.run(main)
