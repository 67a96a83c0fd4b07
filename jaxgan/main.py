"""Command-line entry point: python -m jaxgan.main --config configs/w7_128.py --workdir runs/x.

Starting in a workdir that contains a checkpoint resumes that run. Exit status: 0 when the run
finished or stopped cleanly (SIGTERM, Ctrl+C), 2 for an invalid config, data or workdir (also a
workdir that another process trains in, a full disk and a diverged run), 1 for anything
unexpected.
"""

import os
import re
import sys

import ml_collections
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxgan import cli
from jaxgan import families
from jaxgan.data import pipeline
from jaxgan.errors import JaxganError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None,
    "Config file, optionally with a preset: configs/w7_128.py or configs/default.py:tiny. "
    "Override any field with --config.<key>=<value>, for example --config.optim.lr_g=1e-4.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Folder for checkpoints, samples, plots and TensorBoard events of this run.")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume a workdir even when its saved config differs in data.batch_size, seed, "
    "model.dtype or the data selection (data.source, data.min_age, data.max_images, and the "
    "same keys of data_b). Other changes of the model, the image size or optim.optimizer are rejected even "
    "with this flag, because the checkpoint's arrays would not fit.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Run as one process of a multi-process job (jax.distributed.initialize). Values that "
    "--coordinator_address, --num_processes and --process_id leave unset are detected from the "
    "cluster environment: SLURM, Open MPI, Cloud TPU, Kubernetes. Implied by any of those flags.")
_COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None,
    "host:port of the coordinator that process 0 starts; every process passes the same value.")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Number of processes in the job.", lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "Index of this process in the job, from 0 to --num_processes - 1.",
    lower_bound=0)
_INITIALIZATION_TIMEOUT = flags.DEFINE_integer(
    "initialization_timeout", 300,
    "Seconds that a process waits for all processes to connect to the coordinator before it "
    "aborts.", lower_bound=1)


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


def _config_argument(argv: list[str]) -> str | None:
  """Returns the value of --config in argv, or None."""
  for index, argument in enumerate(argv):
    if argument.startswith("--config="):
      return argument.split("=", 1)[1]
    if argument == "--config" and index + 1 < len(argv):
      return argv[index + 1]
  return None


def _override_for(name: str, argv: list[str]) -> str | None:
  """Returns the --config.<key>=<value> argument whose key ends with `name`, or None."""
  for argument in argv:
    key = argument.split("=", 1)[0]
    if key.startswith("--config.") and key.split(".")[-1] == name:
      return argument
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; an invalid flag, config file or override exits with status 2 and one message.

  The config file is user code that runs while flags are parsed, so any exception it raises is
  reported here as a config error.
  """
  config_argument = _config_argument(argv)
  if config_argument is not None:
    path = config_argument.split(":", 1)[0]
    if not os.path.isfile(path):
      _exit_with_error(
          f"Config file not found: {path} (from --config={config_argument}). Pass the path of a "
          "Python file with a get_config() function, for example configs/default.py.")
  try:
    return flags.FLAGS(argv)
  except Exception as error:  # pylint: disable=broad-exception-caught
    message = _clean_message(error)
    # ml_collections reports a misspelled --config.<key> with only the last part of the key.
    unknown = message.split("'")[1] if message.startswith("'") and message.count("'") >= 2 else ""
    override = _override_for(unknown, argv) if unknown else None
    if override is not None:
      hint = message.split("'", 2)[2].strip(" .")
      message = (f"Unknown config key in {override}" + (f" ({hint})" if hint else "") +
                 ". Every key of the DCGAN family is listed, with a comment, in "
                 "jaxgan/base_configs/dcgan.py.")
    elif isinstance(error, flags.Error) and "Error whilst parsing config file:" in message:
      # ml_collections wraps an exception raised by get_config(), such as an unknown preset.
      detail = message.split("Error whilst parsing config file:", 1)[1].strip()
      detail = re.sub(r"^[A-Za-z]+Error: ", "", detail)
      message = f"Could not load the config file {config_argument}: {detail}"
    elif isinstance(error, flags.Error) and message.startswith("flag --config."):
      separator = " " if message.endswith((".", "?", "!")) else ". "
      message += (f"{separator}Pass a value of the same type as the key's default; the DCGAN "
                  "keys and their defaults are in jaxgan/base_configs/dcgan.py.")
    elif isinstance(error, flags.Error):
      separator = " " if message.endswith((".", "?", "!")) else ". "
      message += f"{separator}Run with --helpfull for the list of flags."
    else:
      if isinstance(error, SyntaxError):
        message = f"{error.msg} at line {error.lineno}"
      message = message.replace(
          "module 'config_config' has no attribute 'get_config'", "it defines no get_config()")
      message = f"Could not load the config file {config_argument}: {message}"
    _exit_with_error(message)


def load_config():
  """Returns the parsed --config; a config file that is missing or fails to load exits with 2."""
  try:
    config = _CONFIG.value
    config.to_dict()  # ml_collections loads the file lazily, on first access.
  except Exception as error:  # pylint: disable=broad-exception-caught
    # The config file is user code: any error in it is reported as a config error.
    _exit_with_error(f"Could not load --config: {_clean_message(error)}")
  return config


def _multi_process_arguments() -> tuple[str | None, int | None, int | None] | None:
  """Returns (coordinator_address, num_processes, process_id) to start with, or None for one process.

  Exits with status 2 when the values contradict each other.
  """
  address, num_processes, process_id = (
      _COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if not _DISTRIBUTED.value and (address, num_processes, process_id) == (None, None, None):
    return None
  if address is not None and not address.rpartition(":")[2].isdigit():
    _exit_with_error(f"Invalid --coordinator_address={address}: expected host:port, for example "
                     "10.0.0.1:1234.")
  if num_processes is not None and process_id is not None and process_id >= num_processes:
    _exit_with_error(f"Invalid --process_id={process_id}: it must be less than "
                     f"--num_processes={num_processes}.")
  return address, num_processes, process_id


def check_before_jax(config: ml_collections.ConfigDict) -> None:
  """Validates the config and its image folders, exiting with status 2 and one line on an error.

  It imports neither JAX nor TensorFlow, so a bad value is reported in about a second. The
  trainer runs the same config checks again (and reads the images) after importing them.
  """
  try:
    families.validate_config(config)
    pipeline.check_folders(config)
  except JaxganError as error:
    _exit_with_error(str(error))


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if flags.FLAGS["config"].present == 0 or not _WORKDIR.value:
    sys.stderr.write("Error: both --config and --workdir are required, for example\n"
                     "  python -m jaxgan.main --config configs/default.py --workdir runs/default\n")
    sys.exit(2)

  logging.get_absl_handler().addFilter(cli.QuietLibraryFilter())
  config = load_config()
  multi_process = _multi_process_arguments()
  check_before_jax(config)

  # Imported here so that --help, flag errors and invalid configs do not pay for importing JAX
  # and TensorFlow.
  import jax  # pylint: disable=g-import-not-at-top
  from jaxgan import parallel  # pylint: disable=g-import-not-at-top
  from jaxgan import train  # pylint: disable=g-import-not-at-top

  try:
    if multi_process is not None:
      # Must come before any other JAX call: those initialize the single-process backend.
      parallel.initialize_processes(*multi_process, timeout_s=_INITIALIZATION_TIMEOUT.value)
    logging.info("JAX %s: %s", jax.__version__, parallel.describe_topology())
    train.train_and_evaluate(config, _WORKDIR.value, _ALLOW_CONFIG_CHANGE.value)
  except JaxganError as error:
    # absl logging writes the message to stderr, so it is not printed a second time.
    logging.error("%s", error)
    sys.exit(2)
  except KeyboardInterrupt as interrupt:
    _exit_interrupted(_WORKDIR.value, second=isinstance(interrupt, train.ImmediateStop))


def _newest_checkpoint_step(workdir: str) -> int | None:
  """Returns the newest complete checkpoint step in `workdir`, or None.

  Orbax writes each checkpoint under a temporary name and renames it to its step when complete,
  so only folders named by a number count.
  """
  try:
    names = os.listdir(os.path.join(workdir, "checkpoints"))
  except OSError:
    return None
  return max((int(name) for name in names if name.isdigit()), default=None)


def _exit_interrupted(workdir: str, second: bool) -> None:
  """Prints one line for a Ctrl+C that stopped the run without saving, and exits with 130."""
  cause = "a second Ctrl+C" if second else "Ctrl+C"
  step = _newest_checkpoint_step(workdir)
  if step is None:
    where = "no checkpoint has been saved yet"
  else:
    where = f"the newest checkpoint is step {step} (resume with the same command)"
  sys.stderr.write(f"Stopped at once by {cause} without saving; {where}.\n")
  sys.stdout.flush()
  sys.stderr.flush()
  # os._exit skips the interpreter shutdown, at which an Orbax save still running in a
  # background thread would print a traceback. The unfinished save leaves only a temporary
  # folder, which Orbax ignores.
  os._exit(130)  # pylint: disable=protected-access


def _adopt_script_help() -> None:
  """Makes `--help` of the `jaxgan` console script match `python -m jaxgan.main --help`.

  absl's --help prints the docstring of `__main__` and the key flags of the module named
  sys.argv[0]. For the console script those are the generated wrapper script, which has neither.
  """
  if __name__ == "__main__":
    return
  sys.modules["__main__"].__doc__ = __doc__
  for flag in flags.FLAGS.get_key_flags_for_module(__name__):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run() -> None:
  """Console-script entry point (`jaxgan`)."""
  _adopt_script_help()
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
