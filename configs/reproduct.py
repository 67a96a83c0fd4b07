"""reproduct: a public TensorFlow DCGAN for Simpsons faces, at 64x64 with 5x5 kernels.

    python -m jaxgan.main --config configs/reproduct.py --workdir runs/reproduct \
        --config.data.dir=<folder with 1.png ... 9877.png>

The "reproduct" architecture (see jaxgan/models/dcgan.py), batch 64, 300 epochs, weights from a
truncated normal with std 0.02 and z ~ U(-1, 1). The real images get random horizontal flips and
Gaussian noise with std ~ U(0, 0.1). D's loss is the mean of the real and fake BCE terms.
Learning rates, Adam betas and label smoothing are those of configs/w7_128.py.
"""

import os

import ml_collections

from jaxgan import config_lib


def get_config() -> ml_collections.ConfigDict:
  config = config_lib.load_config_file(os.path.join(os.path.dirname(__file__), "w7_128.py"))
  config.model.arch = "reproduct"
  config.model.init = "truncated_normal"
  config.model.latent_distribution = "uniform"
  config.data.image_size = 64
  config.data.batch_size = 64
  config.data.random_flip = True
  config.loss.real_noise_max = 0.1
  config.loss.d_reduction = "mean"
  config.train.num_epochs = 300
  return config
