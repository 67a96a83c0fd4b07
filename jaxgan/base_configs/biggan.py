"""Base config of the BigGAN-lite family; the BigGAN experiments in configs/ start from it.

The data, optim and train sections and their comments come from the DCGAN base config
(jaxgan/base_configs/dcgan.py). This file replaces the model and loss sections, adds the sample
section. It sets the training values of BigGAN (Brock et al., 2019): hinge loss, 2 D steps per
G step, G lr 1e-4, D lr 4e-4 and Adam betas (0, 0.999). Orthogonal regularisation (1e-4) and an
EMA of G's weights are on. Defaults describe an unconditional 64x64 model on the built-in generated faces.
"""

import ml_collections

from jaxgan.base_configs import dcgan


def get_config() -> ml_collections.ConfigDict:
  """Returns the base BigGAN-lite config. Experiment files override only what differs."""
  config = dcgan.get_config()
  # BigGAN draws no random flips or label noise: DiffAugment (loss.augment) replaces them.
  del config.data["random_flip"]
  # Class names in label order, comma-separated. "" = the sorted subfolder names of data.dir,
  # which the run writes back here, so that config.json and every checkpoint record them.
  # A non-empty value must match those folder names.
  config.data.class_names = ""
  config.data.image_size = 64

  config.model = ml_collections.ConfigDict()
  config.model.family = "biggan"
  # The only architecture of the family: residual G and D blocks, spectral normalisation,
  # self-attention, and for conditional models class-conditional BatchNorm and projection.
  config.model.arch = "biggan_lite"
  # Base channel count; a block's channels are width times its multiplier.
  config.model.width = 32
  # Channel multiplier of each G up-block, from 4x4 up: log2(image_size / 4) entries.
  config.model.g_multipliers = (8, 4, 2, 1)
  # Channel multiplier of each D block, from the image down: log2(image_size / 4) + 1 entries.
  # All blocks but the last halve the resolution; the last one runs at 4x4.
  config.model.d_multipliers = (1, 2, 4, 8, 8)
  # Resolution of the self-attention block: after the G block that outputs it, before the D
  # block that reads it (D has none when it equals image_size). 0 = no attention.
  config.model.attention_resolution = 32
  # Length of z, split into len(g_multipliers) + 1 near-equal chunks: the first feeds the 4x4
  # input layer, each other one the BatchNorm gains and biases of one G block.
  config.model.latent_dim = 120
  # Number of classes; 0 = unconditional. A conditional model reads data.dir/<class>/* (the
  # "folder" source with one subfolder per class).
  config.model.num_classes = 0
  # Length of G's shared class embedding (concatenated with each z chunk). Unused when
  # num_classes is 0.
  config.model.embed_dim = 128
  # Epsilon of every BatchNorm in G (D has none).
  config.model.bn_epsilon = 1e-5
  # Exponential moving average of G's weights: ema = decay * ema + (1 - decay) * weights after
  # every G update from step ema_start_step on. Before it, the EMA copies the weights.
  config.model.ema_decay = 0.9999
  config.model.ema_start_step = 1000

  config.loss = ml_collections.ConfigDict()
  # D updates per train step. The global batch is split into d_steps equal parts, one per D
  # update, and the G update then uses batch_size / d_steps fakes. batch_size must be a multiple.
  config.loss.d_steps = 2
  # Weight of BigGAN's orthogonal regulariser sum_W ||W^T W * (1 - I)||_F^2 on G's kernels
  # (W as [fan_in, out]; the class embedding is left out). 0 = off.
  config.loss.orthogonal_weight = 1e-4
  # DiffAugment ops applied to real and fake images inside D's and G's losses, comma-separated,
  # from "color", "translation" and "cutout". "" = no augmentation.
  config.loss.augment = "color,translation,cutout"

  config.optim.lr_g = 1e-4
  config.optim.lr_d = 4e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.999
  config.optim.eps = 1e-6

  config.sample = ml_collections.ConfigDict()
  # Weights behind the sample grids: "ema" (the moving average) or "raw" (the trained weights).
  config.sample.weights = "ema"
  # Truncation trick: grid latents with |z_i| > truncation are redrawn until none is.
  # 0 = no truncation.
  config.sample.truncation = 0.0
  # Columns of the sample grid. A conditional grid has one row per class and shares z across a
  # column; an unconditional grid has grid_rows rows.
  config.sample.grid_columns = 8
  config.sample.grid_rows = 5

  config.train.num_epochs = 200
  return config
