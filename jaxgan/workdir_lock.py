"""An exclusive lock on a run's workdir, so that two processes never train into the same one.

The lock is an `fcntl.flock` on `workdir/jaxgan.lock`, which contains the PID of the holder. The
operating system releases a flock when its process ends in any way, SIGKILL included, so a killed
run never leaves a stale lock behind. The file itself stays in the workdir.

NOTE: flock is reliable on local file systems. On NFS it depends on the server and client
versions: Linux clients since 2.6.12 emulate it with byte-range locks (flock(2) man page).
"""

import fcntl
import os
from typing import TextIO

from absl import logging

from jaxgan.errors import JaxganError

LOCK_FILE_NAME = "jaxgan.lock"


class WorkdirLockedError(JaxganError):
  """Another process holds the lock on the workdir."""


def _read_holder(file: TextIO) -> str:
  file.seek(0)
  text = file.read().strip()
  return text if text.isdigit() else "unknown"


class WorkdirLock:
  """Holds the lock on a workdir from `__enter__` to `__exit__`.

  `__enter__` creates the workdir when it is missing. If it created the workdir and nothing but
  the lock file is in it at `__exit__`, it removes both, so that a run that failed before writing
  anything (a wrong data.dir, for example) leaves nothing behind.

  Args:
    workdir: the run's folder.
    enabled: False makes the lock a no-op. Only process 0 of a multi-process run takes the lock,
      because all processes share the workdir.
  """

  def __init__(self, workdir: str | os.PathLike, enabled: bool = True):
    self.workdir = os.path.abspath(workdir)
    self.path = os.path.join(self.workdir, LOCK_FILE_NAME)
    self.enabled = enabled
    self._file: TextIO | None = None
    self._created_workdir = False

  def __enter__(self) -> "WorkdirLock":
    if not self.enabled:
      return self
    self._created_workdir = not os.path.exists(self.workdir)
    os.makedirs(self.workdir, exist_ok=True)
    # "a+" opens without truncating, so a rejected process does not erase the holder's PID.
    file = open(self.path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
    try:
      fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(file)
      file.close()
      raise WorkdirLockedError(
          f"The workdir {self.workdir} is in use by another jaxgan process (PID {holder}, "
          f"which holds the lock {self.path}). Wait for that run to finish, stop it with "
          f"kill -TERM {holder} (it saves a checkpoint first), or pass another --workdir."
      ) from None
    file.seek(0)
    file.truncate()
    file.write(f"{os.getpid()}\n")
    file.flush()
    self._file = file
    return self

  def __exit__(self, *exc_info) -> None:
    if self._file is None:
      return
    # Closing the file releases the flock.
    self._file.close()
    self._file = None
    if self._created_workdir and os.listdir(self.workdir) == [LOCK_FILE_NAME]:
      try:
        os.remove(self.path)
        os.rmdir(self.workdir)
      except OSError as error:
        logging.warning("Could not remove the empty workdir %s: %s", self.workdir, error)
