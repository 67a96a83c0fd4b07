"""w7_128: the lab's w7 DCGAN at 128x128 on the Simpsons faces (the baseline of the experiments).

    python -m jaxgan.main --config configs/w7_128.py --workdir runs/w7_128 \
        --config.data.dir=<folder with 1.png ... 9877.png>

Batch 32, 400 epochs, G lr 4e-4, D lr 4e-5, Adam betas (0.5, 0.999), BatchNorm epsilon 5e-5,
z ~ N(0, 1), real targets U(0.9, 1.0), D loss the sum of the real and fake BCE terms. Known
non-face images are excluded. The reference PyTorch run showed loss spikes around epochs 125 and
180, each followed by crude rectangular faces that recovered within about 20 epochs.
Preset `:64` trains the same architecture at 64x64.
"""

import ml_collections

from jaxgan.base_configs import dcgan


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  config = dcgan.get_config()
  config.data.source = "folder"
  config.data.exclude_known_non_faces = True
  config.data.image_size = 128
  config.data.batch_size = 32
  config.model.arch = "w7"
  config.model.bn_epsilon = 5e-5
  config.optim.lr_g = 4e-4
  config.optim.lr_d = 4e-5
  config.train.num_epochs = 400

  if preset == "64":
    config.data.image_size = 64
  elif preset:
    raise ValueError(f"unknown preset {preset!r} for configs/w7_128.py; the only preset is '64'")
  return config
