"""reproduct64: the lab's variant of the reproduct DCGAN (4x4 kernels, final conv) at 64x64.

    python -m jaxgan.main --config configs/reproduct64.py --workdir runs/reproduct64 \
        --config.data.dir=<folder with 1.png ... 9877.png>

The "reproduct4" architecture with the training settings of configs/reproduct.py: batch 64,
300 epochs, truncated-normal weights, z ~ U(-1, 1), flips and noise on the real images, mean D
loss. The reference run gave the best faces of the series in 2h09, with a loss spike at epoch 225
that degraded them.
"""

import os

import ml_collections

from jaxgan import config_lib


def get_config() -> ml_collections.ConfigDict:
  config = config_lib.load_config_file(os.path.join(os.path.dirname(__file__), "reproduct.py"))
  config.model.arch = "reproduct4"
  return config
