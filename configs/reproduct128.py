"""reproduct128: configs/reproduct64.py at 128x128, for 500 epochs.

    python -m jaxgan.main --config configs/reproduct128.py --workdir runs/reproduct128 \
        --config.data.dir=<folder with 1.png ... 9877.png>

The reference run showed no loss spikes and recognisable faces with two eyes and a mouth, in
12h45 on one GPU.
"""

import os

import ml_collections

from jaxgan import config_lib


def get_config() -> ml_collections.ConfigDict:
  config = config_lib.load_config_file(os.path.join(os.path.dirname(__file__), "reproduct64.py"))
  config.data.image_size = 128
  config.train.num_epochs = 500
  return config
