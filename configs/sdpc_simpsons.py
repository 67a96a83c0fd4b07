"""sdpc_simpsons: two-layer SDPC dictionaries learned on the Simpsons faces at 64x64.

    python -m jaxgan.main --config configs/sdpc_simpsons.py --workdir runs/sdpc_simpsons \
        --config.data.dir=<folder with 1.png ... 9877.png>

64 atoms of 3x9x9 at stride 3 (64 -> 19x19 codes), then 128 atoms of 64x9x9 at stride 1
(19 -> 11x11), lambda 0.3 and 1.6, k_fb = 1, FISTA, batch 16, SGD with momentum 0.9 at 1e-4
(layer 1) and 5e-3 (layer 2), as the face-photo setting of Boutin et al. (PLOS Computational
Biology, 2021). The images stay in [-1, 1] without whitening, as a GAN receives them, so the learned
dictionaries can decode GAN outputs. Each epoch writes the atoms (samples/epoch_NNNN.png: four
rows of layer-1 atoms, then four rows of layer-2 atoms back-projected to pixels), the
reconstruction error and the active fraction of each layer. Preset `:tiny` is a quick CPU check
on the built-in generated faces.
"""

import ml_collections

from jaxgan.base_configs import sdpc


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  config = sdpc.get_config()
  config.data.source = "folder"
  config.data.exclude_known_non_faces = True

  if preset == "tiny":
    config.data.source = "generated"
    config.data.num_generated = 32
    config.data.image_size = 24
    config.data.batch_size = 8
    config.model.atoms = (8, 8)
    config.model.kernel_sizes = (6, 5)
    config.model.strides = (2, 1)
    config.model.max_iterations = 30
    config.model.power_iterations = 10
    config.train.num_epochs = 2
    config.train.log_every_steps = 2
  elif preset:
    raise ValueError(f"unknown preset {preset!r} for configs/sdpc_simpsons.py; the only preset "
                     "is 'tiny'")
  return config
