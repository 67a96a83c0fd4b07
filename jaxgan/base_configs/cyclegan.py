"""Base config of the CycleGAN family (Zhu et al., 2017); configs/cyclegan_*.py start from it.

The values are the paper's at 128x128: ResNet generators with 6 blocks and width 64, 70x70
PatchGANs, LSGAN loss, cycle weight 10, identity weight 0.5 x 10 and pools of 50 images. Adam
(betas 0.5, 0.999) runs at 2e-4 for 100 epochs, then decays linearly to 0 over 100 more, batch 1.
Both domains default to the built-in generated faces (B with red and blue swapped), so that the
config runs on a fresh install.
"""

import ml_collections

from jaxgan.base_configs import dcgan


def get_config() -> ml_collections.ConfigDict:
  """Returns the base CycleGAN config. Experiment files override only what differs."""
  config = dcgan.get_config()

  config.model = ml_collections.ConfigDict()
  config.model.family = "cyclegan"
  # The only architecture: ResNet generators and 70x70 PatchGAN discriminators.
  config.model.arch = "resnet_patchgan"
  # Base width w of G and F (w, 2w, 4w channels) and of D_A and D_B (w, 2w, 4w, 8w channels).
  config.model.width_g = 64
  config.model.width_d = 64
  # Residual blocks of G and F: 6 at 128x128 and 9 at 256x256 in the paper.
  config.model.num_blocks = 6

  # Domain A. The keys below data.source ... data.tfds_manual_dir mean what they mean for DCGAN;
  # data.image_size, batch_size, cache_max_gib, num_threads and prefetch_batches apply to both
  # domains.
  config.data.source = "generated"
  config.data.image_size = 128
  config.data.batch_size = 1
  # Keep only files whose UTKFace name ("<age>_<gender>_<race>_<date>.jpg...") has an age >= this
  # (0 = no filter). Files whose names do not start with an age are skipped. Folder source only.
  config.data.min_age = 0
  # Use a random subset of this many images, chosen from the seed (0 = all images).
  config.data.max_images = 0
  # Reorder the colour channels after reading: "rgb" (unchanged), "bgr", "gbr" or "brg".
  config.data.channel_order = "rgb"

  # Domain B: the same per-domain keys as domain A.
  config.data_b = ml_collections.ConfigDict()
  config.data_b.source = "generated"
  config.data_b.dir = ""
  config.data_b.exclude_ids = ""
  config.data_b.exclude_known_non_faces = False
  config.data_b.num_generated = 2000
  config.data_b.tfds_data_dir = ""
  config.data_b.tfds_manual_dir = ""
  config.data_b.min_age = 0
  config.data_b.max_images = 0
  config.data_b.channel_order = "bgr"

  config.loss = ml_collections.ConfigDict()
  # Adversarial loss: "lsgan" (least squares), "non_saturating" (BCE on logits) or "hinge".
  config.loss.adversarial = "lsgan"
  # Weight of the cycle losses |F(G(a)) - a| and |G(F(b)) - b| (L1 means).
  config.loss.cycle_weight = 10.0
  # Weight of the identity losses |G(b) - b| and |F(a) - a|, as a multiple of cycle_weight
  # (0 = off, which also skips two generator passes per step).
  config.loss.identity_weight = 0.5
  # Generated images kept per domain for the discriminator updates (0 = no pool).
  config.loss.pool_size = 50

  config.optim.lr_g = 2e-4
  config.optim.lr_d = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  # Constant until decay_start_epoch, then linearly to 0 at train.num_epochs.
  config.optim.schedule_g = "linear"
  config.optim.schedule_d = "linear"
  config.optim.decay_start_epoch = 100.0

  config.train.num_epochs = 200
  # Columns of the sample grid: each column shows one fixed image per domain, in six rows:
  # A, G(A), F(G(A)), B, F(B), G(F(B)).
  config.train.grid_columns = 8

  config.monitor = ml_collections.ConfigDict()
  # Warn when an epoch's mean |G(x) - x| of a generator falls below this (pixel values in [-1, 1]):
  # the generator has collapsed to the identity.
  config.monitor.min_change = 0.01
  # Warn when an epoch's mean standard deviation of G(x) over the batch, per pixel, falls below
  # this: the generator outputs (nearly) one image for every input. Needs batch_size >= 2.
  config.monitor.min_batch_std = 0.01

  return config
