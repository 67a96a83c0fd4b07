"""BigGAN-lite, unconditional, on the Simpsons faces at 128x128 (meant for one GPU).

    python -m jaxgan.main --config configs/biggan_lite_128.py --workdir runs/biggan_lite_128 \
        --config.data.dir=<folder with 1.png ... 9877.png>

Width 32: G blocks of 512, 256, 128, 64 and 32 channels from 4x4 to 128x128, self-attention at
64x64, D blocks of 32 to 512 channels. Batch 64 split into 2 D updates of 32. Known non-face
images are excluded, and DiffAugment (color, translation, cutout) is on.
"""

import ml_collections

from jaxgan.base_configs import biggan


def get_config() -> ml_collections.ConfigDict:
  config = biggan.get_config()
  config.data.source = "folder"
  config.data.exclude_known_non_faces = True
  config.data.image_size = 128
  config.data.batch_size = 64
  config.model.width = 32
  config.model.g_multipliers = (16, 8, 4, 2, 1)
  config.model.d_multipliers = (1, 2, 4, 8, 16, 16)
  config.model.attention_resolution = 64
  config.model.ema_decay = 0.999
  config.model.ema_start_step = 1000
  config.train.num_epochs = 1000
  config.train.checkpoint_every_epochs = 25
  config.train.sample_every_epochs = 5
  return config
