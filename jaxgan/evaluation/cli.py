"""absl flag parsing and error handling shared by jaxgan.evaluate and jaxgan.sample.

Bad input (an unknown flag, an invalid value, a missing workdir or weights file) ends the
program with one "Error: ..." line on stderr and exit status 2, never a traceback. The argparse
tools use `jaxgan.cli.run` instead.
"""

import os
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


def check_output_folder(flag: str, folder: str) -> None:
  """Exits with one line when `folder`, given with `flag`, cannot be created or written to.

  That is when it or one of its parents is a file, or when the nearest existing parent is not
  writable. A folder that does not exist yet is fine: the tools create it.
  """
  path = os.path.abspath(folder)
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if existing == path and not os.path.isdir(path):
    exit_with_error(f"{flag} {folder} is a file; pass a folder, which is created if missing.")
  if not os.path.isdir(existing):
    exit_with_error(
        f"{flag} {folder} cannot be created because {existing} is a file; pass a folder path "
        "whose parents are folders.")
  if not os.access(existing, os.W_OK | os.X_OK):
    exit_with_error(
        f"{flag} {folder} is not writable: {existing} is read-only for this user. Pass a folder "
        "you can write to.")


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
