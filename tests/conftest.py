"""Fixtures shared by several test files."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spiky_run(tmp_path_factory) -> Path:
  """Workdir of a tiny 4-epoch run whose monitors fire at known epochs.

  The first start trains 3 epochs with a near-zero spike threshold, so every curve is flagged at
  epoch 3 (the first epoch with 2 previous values), at the epoch and at the 4-step scale. Every
  grid passes the collapse ratio of 1e-6, which arms the collapse monitor. The ring contains 1
  checkpoint and 1 regular checkpoint is kept, so the epoch-3 events pin step 8 and step 4 is
  deleted. The second start resumes for a 4th epoch with a spike threshold that nothing reaches
  and a collapse ratio of 10 that no grid reaches. So the armed monitor, restored from the
  checkpoint, flags a collapse at epoch 4, and that event pins step 12.
  """
  sys.path.insert(0, str(REPO))
  from configs import default  # pylint: disable=g-import-not-at-top
  from jaxgan import train  # pylint: disable=g-import-not-at-top

  workdir = tmp_path_factory.mktemp("spiky_run")
  config = default.get_config("tiny")
  config.train.num_epochs = 3
  config.train.ring_epochs = 1
  config.train.keep_checkpoints = 1
  config.train.checkpoint_every_epochs = 100
  config.monitor.spike_window = 2
  config.monitor.spike_min_history = 2
  config.monitor.spike_threshold = 1e-9
  config.monitor.window_steps = 4
  config.monitor.collapse_ratio = 1e-6
  train.train_and_evaluate(config, str(workdir))

  config.train.num_epochs = 4
  config.monitor.spike_threshold = 1e6
  config.monitor.collapse_ratio = 10.0
  train.train_and_evaluate(config, str(workdir))
  return workdir
