"""Command-line entry point: python -m jaxgan.main --config configs/w7_128.py --workdir runs/x.

Starting in a workdir that contains a checkpoint resumes that run. Exit status: 0 when the run
finished or stopped cleanly (SIGTERM, Ctrl+C), 2 for an invalid config, data or workdir, 1 for
anything unexpected.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None,
    "Config file, optionally with a preset: configs/w7_128.py or configs/default.py:tiny. "
    "Override any field with --config.<key>=<value>, for example --config.optim.lr_g=1e-4.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Folder for checkpoints, samples, plots and TensorBoard events of this run.")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume a workdir even when its saved config differs in the model, image size, batch size, "
    "data source or seed.")


class _QuietLibraryFilter:
  """Drops INFO and DEBUG records of libraries that log every checkpoint operation (Orbax)."""

  _PATH_PARTS = ("/orbax/",)

  def filter(self, record) -> bool:
    if record.levelno >= logging.converter.ABSL_TO_STANDARD[logging.WARNING]:
      return True
    return not any(part in record.pathname for part in self._PATH_PARTS)


def _without_traceback(message: str) -> str:
  """Keeps the text before an embedded traceback and the traceback's final error line."""
  head, marker, tail = message.partition("Traceback (most recent call last):")
  if not marker:
    return message.strip()
  last_line = [line for line in tail.strip().splitlines() if line.strip()][-1]
  return f"{head.strip()} {last_line.strip()}"


def _clean_message(error: BaseException) -> str:
  text = str(error.args[0]) if error.args else str(error)
  text = _without_traceback(text).replace("\\'", "'").replace("\\n", " ")
  if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
    text = text[1:-1]
  return " ".join(text.split())


def _exit_with_error(message: str) -> None:
  sys.stderr.write(f"Error: {message}\n")
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; an invalid flag or config override exits with status 2 and one message."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as error:
    # ml_collections raises AttributeError for a misspelled --config.<key> override, with a
    # "Did you mean" hint in the message, and embeds the config file's traceback in flags.Error.
    message = _clean_message(error)
    separator = " " if message.endswith((".", "?", "!")) else ". "
    _exit_with_error(f"{message}{separator}Run with --helpfull for the list of flags.")


def load_config():
  """Returns the parsed --config; a config file that is missing or fails to load exits with 2."""
  try:
    config = _CONFIG.value
    config.to_dict()  # ml_collections loads the file lazily, on first access.
  except Exception as error:  # pylint: disable=broad-exception-caught
    # The config file is user code: any error in it is reported as a config error.
    _exit_with_error(f"Could not load --config: {_clean_message(error)}")
  return config


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if flags.FLAGS["config"].present == 0 or not _WORKDIR.value:
    sys.stderr.write("Error: both --config and --workdir are required, for example\n"
                     "  python -m jaxgan.main --config configs/default.py --workdir runs/default\n")
    sys.exit(2)

  logging.get_absl_handler().addFilter(_QuietLibraryFilter())
  config = load_config()

  # Imported here so that --help and flag errors do not pay for importing JAX and TensorFlow.
  import jax  # pylint: disable=g-import-not-at-top
  from jaxgan import train  # pylint: disable=g-import-not-at-top
  from jaxgan.errors import JaxganError  # pylint: disable=g-import-not-at-top

  logging.info("JAX %s, process %d of %d, %d local and %d global devices: %s", jax.__version__,
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.devices()[0].device_kind)
  try:
    train.train_and_evaluate(config, _WORKDIR.value, _ALLOW_CONFIG_CHANGE.value)
  except JaxganError as error:
    logging.error("%s", error)
    sys.stderr.write(f"Error: {error}\n")
    sys.exit(2)


def run() -> None:
  """Console-script entry point (`jaxgan`)."""
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
