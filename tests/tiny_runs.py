"""Two tiny real training runs shared by the report and sweep tests, trained once per process.

"lr_d-0.0001" trains 2 of 2 epochs with optim.lr_d=1e-4; "lr_d-0.0002" trains 1 epoch with
optim.lr_d=2e-4 and train.num_epochs=1. Tests copy them before changing anything.
"""

import atexit
import functools
import pathlib
import shutil
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
FINISHED = "lr_d-0.0001"
ONE_EPOCH = "lr_d-0.0002"


def tiny_config(lr_d: float, num_epochs: int):
  if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
  from configs import default  # pylint: disable=g-import-not-at-top

  config = default.get_config("tiny")
  config.data.num_generated = 32  # 2 steps per epoch
  config.optim.lr_d = lr_d
  config.train.num_epochs = num_epochs
  return config


@functools.cache
def trained_runs() -> pathlib.Path:
  """Returns a folder with the two runs, trained on first call and removed at exit."""
  from jaxgan import train  # pylint: disable=g-import-not-at-top

  folder = pathlib.Path(tempfile.mkdtemp(prefix="jaxgan_tiny_runs_"))
  atexit.register(shutil.rmtree, folder, ignore_errors=True)
  train.train_and_evaluate(tiny_config(1e-4, 2), str(folder / FINISHED))
  train.train_and_evaluate(tiny_config(2e-4, 1), str(folder / ONE_EPOCH))
  return folder


def copy_run(name: str, destination: pathlib.Path) -> pathlib.Path:
  shutil.copytree(trained_runs() / name, destination)
  return destination
