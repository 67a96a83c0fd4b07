"""w7_128lr: the w7 baseline with both learning rates divided by 4, for 1000 epochs.

    python -m jaxgan.main --config configs/w7_128lr.py --workdir runs/w7_128lr \
        --config.data.dir=<folder with 1.png ... 9877.png>

G lr 1e-4 and D lr 1e-5 instead of 4e-4 and 4e-5; everything else as configs/w7_128.py. The
reference PyTorch run showed two loss spikes instead of the baseline's four, and worse face shapes.
"""

import os

import ml_collections

from jaxgan import config_lib


def get_config() -> ml_collections.ConfigDict:
  config = config_lib.load_config_file(os.path.join(os.path.dirname(__file__), "w7_128.py"))
  config.optim.lr_g = 1e-4
  config.optim.lr_d = 1e-5
  config.train.num_epochs = 1000
  return config
