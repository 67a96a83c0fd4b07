"""BigGAN-lite, unconditional, on the Simpsons faces at 64x64.

    python -m jaxgan.main --config configs/biggan_lite_64.py --workdir runs/biggan_lite_64 \
        --config.data.dir=<folder with 1.png ... 9877.png>

Width 32: G blocks of 256, 128, 64 and 32 channels from 4x4 to 64x64, self-attention at 32x32,
D blocks of 32 to 256 channels. Batch 64 split into 2 D updates of 32. Known non-face images are
excluded. With 1,000 images, DiffAugment (color, translation, cutout) is on.
"""

import ml_collections

from jaxgan.base_configs import biggan


def get_config() -> ml_collections.ConfigDict:
  config = biggan.get_config()
  config.data.source = "folder"
  config.data.exclude_known_non_faces = True
  config.data.image_size = 64
  config.data.batch_size = 64
  config.model.width = 32
  config.model.g_multipliers = (8, 4, 2, 1)
  config.model.d_multipliers = (1, 2, 4, 8, 8)
  config.model.attention_resolution = 32
  # About 15 steps per epoch: the EMA starts after about 65 epochs.
  config.model.ema_decay = 0.999
  config.model.ema_start_step = 1000
  config.train.num_epochs = 1000
  config.train.checkpoint_every_epochs = 25
  config.train.sample_every_epochs = 5
  return config
