"""w7_sgd: the w7 DCGAN at 64x64 trained with SGD with momentum 0.9 instead of Adam.

    python -m jaxgan.main --config configs/w7_sgd.py --workdir runs/w7_sgd \
        --config.data.dir=<folder with 1.png ... 9877.png>

Batch 64, 400 epochs, G lr 4e-4 and D lr 4e-5 as in configs/w7_128.py. In the reference run SGD
did not remove the loss spikes.
"""

import os

import ml_collections

from jaxgan import config_lib


def get_config() -> ml_collections.ConfigDict:
  config = config_lib.load_config_file(os.path.join(os.path.dirname(__file__), "w7_128.py"))
  config.data.image_size = 64
  config.data.batch_size = 64
  config.optim.optimizer = "sgd"
  config.optim.momentum = 0.9
  config.train.num_epochs = 400
  return config
