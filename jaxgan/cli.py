"""Pieces shared by jaxgan's command-line tools: one-line errors, quieter Orbax logs, argparse.

jaxgan.main parses absl flags. The report and sweep tools take positional and repeated arguments,
so they parse with argparse, through `run`, and still run under absl so that absl logging works as
in jaxgan.main. Bad input ends each tool with one line on stderr and exit status 2, never a
traceback.
"""

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from absl import app
from absl import flags
from absl import logging

from jaxgan.errors import JaxganError


class QuietLibraryFilter:
  """Drops INFO and DEBUG records of Orbax, which logs every checkpoint operation, and of JAX's
  backend setup, which logs "Unable to initialize backend 'tpu'" on every machine without one.

  It also drops Orbax's warning "Given directory is read only", which every read-only
  CheckpointManager (as evaluate, sample and analyze open) logs although nothing is wrong.
  """

  _PATH_PARTS = ("/orbax/", "/jax/_src/xla_bridge.py")
  _ORBAX_NOTICES = ("Given directory is read only",)

  def filter(self, record) -> bool:
    if "/orbax/" in record.pathname and str(record.msg).startswith(self._ORBAX_NOTICES):
      return False
    if record.levelno >= logging.converter.ABSL_TO_STANDARD[logging.WARNING]:
      return True
    return not any(part in record.pathname for part in self._PATH_PARTS)


def exit_with_error(message: str) -> NoReturn:
  sys.stderr.write(f"Error: {message}\n")
  sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
  """An argparse parser that reports a usage error in one line and exits with status 2."""

  def error(self, message: str) -> NoReturn:
    exit_with_error(f"{message}. Run {self.prog} --help for usage.")


def run(main: Callable[[argparse.Namespace], None],
        parse_arguments: Callable[[list[str]], argparse.Namespace]) -> None:
  """Calls main(parse_arguments(sys.argv[1:])) under absl; a JaxganError exits with status 2."""

  def parse(argv: list[str]) -> argparse.Namespace:
    arguments = parse_arguments(argv[1:])
    flags.FLAGS([argv[0]])  # absl's own flags keep their defaults.
    return arguments

  def guarded_main(arguments: argparse.Namespace) -> None:
    try:
      main(arguments)
    except JaxganError as error:
      exit_with_error(str(error))

  logging.get_absl_handler().addFilter(QuietLibraryFilter())
  app.run(guarded_main, flags_parser=parse)
