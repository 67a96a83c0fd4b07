"""sdpc_gan: the w7 DCGAN and its two SDPC fusions, on the Simpsons faces at 64x64.

    python -m jaxgan.main --config configs/sdpc_simpsons.py --workdir runs/sdpc_simpsons \
        --config.data.dir=<faces>
    python -m jaxgan.main --config configs/sdpc_gan.py:generator --workdir runs/sdpc_gen_s0 \
        --config.data.dir=<faces> --config.model.sdpc_workdir=runs/sdpc_simpsons --config.seed=0

Presets name the arm of the comparison; everything else is shared, so the arms differ only in
the fused network:
  "baseline": w7 generator and discriminator;
  "generator": sparse-code generator decoding through the frozen SDPC dictionaries, w7
    discriminator (jaxgan/models/sdpc_gan.py);
  "discriminator": w7 generator, discriminator on 15 unrolled FISTA iterations.
Shared: width 32 (half the lab's, to fit CPU budgets), batch 32, G lr 4e-4, D lr 4e-5, Adam betas
(0.5, 0.999), BatchNorm epsilon 5e-5, 100 epochs. Run at least 3 seeds per arm.
"""

import os

import ml_collections

from jaxgan import config_lib

_ARCHITECTURES = {"baseline": "w7", "generator": "sdpc_generator",
                  "discriminator": "sdpc_discriminator"}


def get_config(preset: str = "generator") -> ml_collections.ConfigDict:
  if preset not in _ARCHITECTURES:
    raise ValueError(f"unknown preset {preset!r} for configs/sdpc_gan.py; the presets are "
                     f"{', '.join(repr(name) for name in _ARCHITECTURES)}")
  config = config_lib.load_config_file(
      os.path.join(os.path.dirname(__file__), "w7_128.py"), "64")
  config.model.arch = _ARCHITECTURES[preset]
  config.model.width = 32
  config.train.num_epochs = 100
  return config
