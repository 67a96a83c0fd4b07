"""Default run: a small w7 DCGAN on the built-in generated faces, sized for a laptop CPU.

    python -m jaxgan.main --config configs/default.py --workdir runs/default

Faces take shape within about 10 minutes on 2 CPU cores. Presets:
  configs/default.py:tiny  16x16, a few steps, for tests and smoke runs
  configs/default.py:64    64x64 with the full-width w7 networks
"""

import ml_collections

from jaxgan.base_configs import dcgan


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  config = dcgan.get_config()
  config.data.source = "generated"
  config.data.num_generated = 2048
  config.data.image_size = 32
  config.data.batch_size = 64
  config.model.width = 32
  # Equal learning rates, as in the original DCGAN paper (Radford et al., 2016). With w7_128's
  # 4e-4 / 4e-5 this small model produced only noise for the first 13 epochs on generated faces,
  # whereas 2e-4 / 2e-4 draws faces with eyes by epoch 9.
  config.optim.lr_g = 2e-4
  config.optim.lr_d = 2e-4
  config.train.num_epochs = 50
  config.train.checkpoint_every_epochs = 5
  config.train.log_every_steps = 8

  if preset == "tiny":
    config.data.num_generated = 64
    config.data.image_size = 16
    config.data.batch_size = 16
    config.model.width = 8
    config.train.num_epochs = 2
    config.train.checkpoint_every_epochs = 1
    config.train.log_every_steps = 2
  elif preset == "64":
    config.data.image_size = 64
    config.data.batch_size = 32
    config.model.width = 64
  elif preset:
    raise ValueError(f"unknown preset {preset!r} for configs/default.py; use 'tiny' or '64'")
  return config
