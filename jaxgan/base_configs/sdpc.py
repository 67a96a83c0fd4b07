"""Base config of the SDPC family: two-layer convolutional dictionaries learned on images.

Data and loop settings are those of the DCGAN base config (jaxgan/base_configs/dcgan.py, where
each field is described). The model values follow the two-layer face-photo setting of Boutin
et al. (PLOS Computational Biology, 2021): 64 atoms of 9x9 at stride 3, then 128 atoms of 9x9 at
stride 1, lambda 0.3 and 1.6, feedback strength 1.
"""

import ml_collections

from jaxgan.base_configs import dcgan


def get_config() -> ml_collections.ConfigDict:
  """Returns the base SDPC config."""
  base = dcgan.get_config()
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.family = "sdpc"
  # One entry per layer, bottom first: number of atoms, atom size (k x k) and stride. Layer i's
  # input has the channels of layer i-1's atoms; the image is layer 1's input.
  config.model.atoms = (64, 128)
  config.model.kernel_sizes = (9, 9)
  config.model.strides = (3, 1)
  # L1 weight lambda_i of each layer's codes.
  config.model.lambdas = (0.3, 1.6)
  # Top-down feedback strength k_fb: 0 = independent stacked Lasso problems, 1 = SDPC.
  config.model.k_fb = 1.0
  # Inference solver: "fista" (faster, not monotone) or "ista" (never increases the energy).
  config.model.solver = "fista"
  # An image's inference stops when every layer's reconstruction loss changes by less than this
  # fraction in one iteration (after 3 iterations), or after max_iterations.
  config.model.tolerance = 1e-3
  config.model.max_iterations = 1000
  # Power iterations that estimate each dictionary's largest eigenvalue (the step sizes) per step.
  config.model.power_iterations = 50
  # Comma-separated preprocessing steps applied in order before inference: "zscore", "lcn"
  # (local contrast normalisation), "whiten", "mask" (border fade). "" = images as in [-1, 1].
  config.model.preprocess = ""

  config.data = base.data
  config.data.image_size = 64
  config.data.batch_size = 16

  config.optim = ml_collections.ConfigDict()
  # SGD learning rate of each layer's dictionary, bottom first; momentum is shared. After each
  # step every atom is rescaled to unit L2 norm.
  config.optim.dictionary_lrs = (1e-4, 5e-3)
  config.optim.momentum = 0.9

  config.train = base.train
  config.train.num_epochs = 20
  return config
