"""absl flag parsing and error handling shared by jaxgan.evaluate and jaxgan.sample.

Bad input (an unknown flag, an invalid value, a missing workdir or weights file) ends the
program with one "Error: ..." line on stderr and exit status 2, never a traceback. The argparse
tools use `jaxgan.cli.run` instead.
"""

from typing import Callable

from absl import app
from absl import flags
from absl import logging

from jaxgan.cli import QuietLibraryFilter
from jaxgan.cli import exit_with_error
from jaxgan.errors import JaxganError


def parse_flags(argv: list[str]) -> list[str]:
  """Parses absl flags; an invalid flag exits with status 2 and one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    exit_with_error(f"{error}. Run with --help for the list of flags.")


def run(main: Callable[[list[str]], None]) -> None:
  """Runs `main` as an absl app, turning a JaxganError into one line and exit status 2."""

  def guarded(argv: list[str]) -> None:
    if len(argv) > 1:
      exit_with_error(f"Unexpected arguments: {' '.join(argv[1:])}. Pass options as --flag=value.")
    try:
      main(argv)
    except JaxganError as error:
      # The one-line message is the report; a log line would repeat it on stderr.
      exit_with_error(str(error))

  logging.get_absl_handler().addFilter(QuietLibraryFilter())
  app.run(guarded, flags_parser=parse_flags)
