"""w7_128bn: the w7 baseline with BatchNorm epsilon 0.1, for 360 epochs.

    python -m jaxgan.main --config configs/w7_128bn.py --workdir runs/w7_128bn \
        --config.data.dir=<folder with 1.png ... 9877.png>

Every BatchNorm of G and D has epsilon 0.1 instead of 5e-5; everything else as configs/w7_128.py.
The reference run was two legs of 180 epochs, the second resumed from the first; run
`--config.train.num_epochs=180` first to do the same. It showed more frequent loss spikes than the
baseline and a mode collapse at epoch 116 that went away.
"""

import os

import ml_collections

from jaxgan import config_lib


def get_config() -> ml_collections.ConfigDict:
  config = config_lib.load_config_file(os.path.join(os.path.dirname(__file__), "w7_128.py"))
  config.model.bn_epsilon = 0.1
  config.train.num_epochs = 360
  return config
