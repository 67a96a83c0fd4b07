"""BigGAN-lite, class-conditional, on the 10 Simpsons characters at 32x32 (28x28 upsampled).

    python -m jaxgan.main --config configs/biggan_lite_chars32.py --workdir runs/biggan_chars32 \
        --config.data.dir=<simpsons_characters/train, with one subfolder per character>

Sized to train on a shared CPU: width 16, G blocks of 32, 32 and 16 channels, self-attention at
16x16, batch 32 split into 2 D updates of 16. The learning rates are twice BigGAN's for G (2e-4,
as BigGAN's CIFAR-10 setting) and BigGAN's 4e-4 for D, so that classes show within few steps. The grids have one row per class, in the order of the
sorted folder names (config.json records them as data.class_names). model.num_classes must match
the number of class subfolders, or the run stops at start with a one-line error.

The preset `:tiny` is a smoke test that needs no data: an unconditional model (num_classes 0) at
16x16 on 64 of the built-in generated faces, 2 epochs, under 2 minutes on 2 CPU cores. The
generated source has no classes, so a conditional smoke test needs class folders:

    python -m jaxgan.main --config configs/biggan_lite_chars32.py:tiny --workdir runs/tiny \
        --config.data.source=folder --config.data.dir=<classes> --config.model.num_classes=<N>
"""

import ml_collections

from jaxgan.base_configs import biggan


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  config = biggan.get_config()
  config.data.source = "folder"
  config.data.image_size = 32
  config.data.batch_size = 32
  config.model.num_classes = 10
  config.model.width = 16
  config.model.g_multipliers = (2, 2, 1)
  config.model.d_multipliers = (1, 2, 2, 2)
  config.model.attention_resolution = 16
  config.model.latent_dim = 64
  config.model.embed_dim = 32
  # 250 steps per epoch on the 8,000 training images: the EMA starts in epoch 2 and averages
  # over about 500 steps (2 epochs).
  config.model.ema_decay = 0.998
  config.model.ema_start_step = 250
  config.optim.lr_g = 2e-4
  config.sample.grid_columns = 8
  config.train.num_epochs = 60
  config.train.checkpoint_every_epochs = 1
  config.train.log_every_steps = 10

  if preset == "tiny":
    config.data.source = "generated"
    config.data.num_generated = 64
    config.data.image_size = 16
    config.data.batch_size = 16
    config.model.num_classes = 0
    config.model.width = 8
    config.model.g_multipliers = (2, 1)
    config.model.d_multipliers = (1, 2, 2)
    config.model.attention_resolution = 8
    config.model.latent_dim = 16
    config.model.embed_dim = 8
    config.model.ema_start_step = 4
    config.sample.grid_rows = 4
    config.sample.grid_columns = 4
    config.train.num_epochs = 2
    config.train.log_every_steps = 2
  elif preset:
    raise ValueError(f"unknown preset {preset!r} for configs/biggan_lite_chars32.py; use 'tiny'")
  return config
