"""CycleGAN from adult human faces (UTKFace) to Simpsons faces and back, at 128x128.

Method: Zhu, Park, Isola and Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017 (arXiv:1703.10593). Its settings at 128x128: ResNet generators
with 6 blocks, 70x70 PatchGANs, LSGAN, cycle weight 10, identity weight 5, and image pools of 50.
Adam runs at 2e-4 for 100 epochs and decays linearly to 0 over 100 more, with batch 1.

    python -m jaxgan.main --config configs/cyclegan_face2simpsons.py --workdir runs/cyclegan \
        --config.data.dir=<UTKFace folder> --config.data_b.dir=<Simpsons faces folder>

Domain A: UTKFace crops (file names "<age>_<gender>_<race>_<date>.jpg.chip.jpg"), ages >= 18.
Domain B: Simpsons faces (Kaggle "simpsons-faces", cropped/1.png ...), without the known
non-faces.

Presets:
  configs/cyclegan_face2simpsons.py:64    64x64, sized for a shared 2-core CPU (see below)
  configs/cyclegan_face2simpsons.py:tiny  32x32 generated faces in both domains, for tests

The :64 preset differs from the paper in more than the size: widths 16 (G, F) and 32 (D_A, D_B)
instead of 64, 4 residual blocks, a random subset of 1000 adult faces (so an epoch has 1000
pairs, as many as there are Simpsons faces), batch 4, 40 epochs (20 constant, 20 decaying), and no
identity loss. The identity loss keeps the colours of the input, which works against the yellow
skin of the target domain, and it costs two of the six generator passes of a step.
"""

import ml_collections

from jaxgan.base_configs import cyclegan


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  config = cyclegan.get_config()
  config.data.source = "folder"
  config.data.min_age = 18
  config.data_b.source = "folder"
  config.data_b.exclude_known_non_faces = True
  config.data_b.channel_order = "rgb"
  config.data.image_size = 128
  config.model.num_blocks = 6

  if preset == "64":
    config.data.image_size = 64
    config.data.max_images = 1000
    config.data.batch_size = 4
    config.model.width_g = 16
    config.model.width_d = 32
    config.model.num_blocks = 4
    config.loss.identity_weight = 0.0
    config.train.num_epochs = 40
    config.optim.decay_start_epoch = 20.0
    config.train.checkpoint_every_epochs = 1
    config.train.log_every_steps = 25
  elif preset == "tiny":
    config.data.source = "generated"
    config.data.min_age = 0
    config.data.num_generated = 32
    config.data_b.source = "generated"
    config.data_b.exclude_known_non_faces = False
    config.data_b.num_generated = 24
    config.data_b.channel_order = "bgr"
    config.data.image_size = 32
    config.data.batch_size = 8
    config.model.width_g = 4
    config.model.width_d = 4
    config.model.num_blocks = 1
    config.loss.pool_size = 6
    config.train.num_epochs = 2
    config.optim.decay_start_epoch = 1.0
    config.train.checkpoint_every_epochs = 1
    config.train.log_every_steps = 1
    config.train.grid_columns = 3
  elif preset:
    raise ValueError(
        f"unknown preset {preset!r} for configs/cyclegan_face2simpsons.py; use '64' or 'tiny'")
  return config
