"""Flag parsing and error handling shared by the evaluation command-line tools.

Bad input (an unknown flag, an invalid value, a missing workdir or weights file) ends the
program with one "Error: ..." line on stderr and exit status 2, never a traceback.
"""

import sys
from typing import Callable

from absl import app
from absl import flags

from jaxgan.errors import JaxganError


def exit_with_error(message: str) -> None:
  sys.stderr.write(f"Error: {' '.join(str(message).split())}\n")
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """Parses absl flags; an invalid flag exits with status 2 and one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    exit_with_error(f"{error}. Run with --help for the list of flags.")
  return []


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

  app.run(guarded, flags_parser=parse_flags)
