"""w7_hrf_noise: the w7 DCGAN at 64x64 with random horizontal flips and noise on the real images.

    python -m jaxgan.main --config configs/w7_hrf_noise.py --workdir runs/w7_hrf_noise \
        --config.data.dir=<folder with 1.png ... 9877.png>

Batch 64, 300 epochs. Each real image is flipped with probability 0.5, and Gaussian noise with
std ~ U(0, 0.1) is added to the real batch. Everything else is as configs/w7_128.py. It tests whether
flips and noise explain the gain of reproduct64 over w7_128: the reference run (1h40) had no loss
spikes and samples nearly as good as reproduct64's.
"""

import os

import ml_collections

from jaxgan import config_lib


def get_config() -> ml_collections.ConfigDict:
  config = config_lib.load_config_file(os.path.join(os.path.dirname(__file__), "w7_128.py"))
  config.data.image_size = 64
  config.data.batch_size = 64
  config.data.random_flip = True
  config.loss.real_noise_max = 0.1
  config.train.num_epochs = 300
  return config
