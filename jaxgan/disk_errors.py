"""Turning a full disk, wherever a run hits it, into one clear error.

A full disk shows up as OSError with errno ENOSPC (or EDQUOT for a quota) from Python file writes,
and as ValueError("RESOURCE_EXHAUSTED: ... No space left on device [os_error_code='28']") from
the TensorStore writes inside an Orbax save.
"""

import contextlib
import errno
import os
import shutil
from typing import Iterator

from jaxgan.errors import JaxganError

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")


class DiskFullError(JaxganError):
  """The file system of the workdir ran out of space or quota during a run."""


def is_disk_full(error: BaseException) -> bool:
  """Returns True if `error`, or an exception it was raised from, reports a full disk."""
  seen = set()
  current: BaseException | None = error
  while current is not None and id(current) not in seen:
    seen.add(id(current))
    if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
      return True
    if any(text in str(current) for text in _DISK_FULL_TEXTS):
      return True
    current = current.__cause__ or current.__context__
  return False


def _free_space(path: str) -> str:
  try:
    free = shutil.disk_usage(path).free
  except OSError:
    return "unknown"
  return f"{free / (1 << 20):.1f} MiB"


def _first_line(error: BaseException) -> str:
  lines = str(error).strip().splitlines()
  return lines[0] if lines else type(error).__name__


@contextlib.contextmanager
def full_disk_as_error(workdir: str | os.PathLike) -> Iterator[None]:
  """Re-raises any exception that reports a full disk as DiskFullError naming the workdir.

  Orbax writes each checkpoint into a temporary folder and renames it when complete, so a save
  that fails for lack of space leaves the previous checkpoints usable.
  """
  try:
    yield
  except JaxganError:
    raise
  except Exception as error:  # pylint: disable=broad-exception-caught
    if not is_disk_full(error):
      raise
    workdir = os.path.abspath(workdir)
    path = getattr(error, "filename", None) or workdir
    raise DiskFullError(
        f"No space left on the device while writing to {path} ({_free_space(workdir)} free "
        f"in {workdir}): {_first_line(error)}. Free disk space there, or lower "
        "train.keep_checkpoints, then run the same command: the run resumes from its newest "
        f"complete checkpoint in {os.path.join(workdir, 'checkpoints')}.") from error
