"""Checks of the CycleGAN family's config keys (jaxgan/base_configs/cyclegan.py), without JAX."""

import ml_collections

from jaxgan import config_lib
from jaxgan.data import unpaired
from jaxgan.errors import ConfigError

# Adversarial objectives on raw discriminator outputs (logits, or least-squares scores), as
# jaxgan.losses.adversarial_d_loss and adversarial_g_loss compute them.
ADVERSARIAL_LOSSES = ("lsgan", "non_saturating", "hinge")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a model, loss, data or monitor value that CycleGAN cannot train with."""
  config_lib.check_choice(config, "model.arch", ("resnet_patchgan",))
  config_lib.check_number(config, "model.width_g", low=1, integer=True)
  config_lib.check_number(config, "model.width_d", low=1, integer=True)
  config_lib.check_number(config, "model.num_blocks", low=0, integer=True)
  size = config.data.image_size
  if size % 4 or size < 32:
    raise ConfigError(
        f"Invalid config value data.image_size={size!r}: the ResNet generator halves the size "
        "twice and the PatchGAN needs at least 32 pixels, so it must be a multiple of 4 and "
        ">= 32 (for example 64, 128 or 256). Pass --config.data.image_size=<size>.")
  config_lib.check_choice(config, "loss.adversarial", ADVERSARIAL_LOSSES)
  config_lib.check_number(config, "loss.cycle_weight", low=0)
  config_lib.check_number(config, "loss.identity_weight", low=0)
  config_lib.check_number(config, "loss.pool_size", low=0, integer=True)
  config_lib.check_number(config, "train.grid_columns", low=1, integer=True)
  config_lib.check_number(config, "monitor.min_change", low=0)
  config_lib.check_number(config, "monitor.min_batch_std", low=0)
  unpaired.validate(config)
