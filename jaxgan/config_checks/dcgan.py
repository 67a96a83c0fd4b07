"""Checks of the DCGAN family's config keys (jaxgan/base_configs/dcgan.py), without JAX."""

import ml_collections

from jaxgan import config_lib
from jaxgan.errors import ConfigError

# Keys of jaxgan.models.dcgan.ARCHITECTURES, in sorted order. tests/test_main_early_errors.py
# checks that the two match, because the models module imports JAX and this one must not.
CONV_ARCHITECTURES = ("reproduct", "reproduct4", "w7")
# Architectures of jaxgan/models/sdpc_gan.py that decode with pretrained SDPC dictionaries.
FUSION_ARCHITECTURES = ("sdpc_generator", "sdpc_discriminator")
# Architectures whose image size must be a multiple of 16 (four stride-2 stages); the others need
# a multiple of 8.
SIZE_MULTIPLE_16 = ("reproduct", "reproduct4")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a model, loss or data value that the DCGAN family cannot train with."""
  config_lib.check_choice(config, "model.arch", CONV_ARCHITECTURES + FUSION_ARCHITECTURES)
  if config.model.arch in FUSION_ARCHITECTURES:
    config_lib.check_number(config, "model.sdpc_sparsity_weight", low=0)
    config_lib.check_number(config, "model.sdpc_unrolled_steps", low=1, integer=True)
    if not config.model.sdpc_workdir:
      raise ConfigError(
          f"Missing config value model.sdpc_workdir: the {config.model.arch} architecture "
          "decodes with pretrained SDPC dictionaries. Pass --config.model.sdpc_workdir=<workdir "
          "of a run of configs/sdpc_simpsons.py at the same image size>.")
  config_lib.check_number(config, "model.width", low=1, integer=True)
  config_lib.check_number(config, "model.latent_dim", low=1, integer=True)
  config_lib.check_choice(config, "model.latent_distribution", ("normal", "uniform"))
  config_lib.check_number(config, "model.bn_epsilon", low=0, low_inclusive=False)
  config_lib.check_choice(config, "model.init", ("glorot_normal", "truncated_normal"))
  config_lib.check_choice(config, "model.dtype", ("float32", "bfloat16"))
  if config.model.arch in FUSION_ARCHITECTURES and config.model.dtype != "float32":
    raise ConfigError(
        f"Invalid config value model.dtype={config.model.dtype!r}: the {config.model.arch} "
        "architecture computes in float32 only. Pass --config.model.dtype=float32.")

  size = config.data.image_size
  if config.model.arch in SIZE_MULTIPLE_16 and size % 16:
    raise ConfigError(
        f"Invalid config value data.image_size={size!r}: the {config.model.arch} architecture "
        "doubles the size four times from size/16, so it needs a multiple of 16 (for example "
        "32, 64 or 128). Pass --config.data.image_size=<size>.")
  if size % 8 or size < 8:
    raise ConfigError(
        f"Invalid config value data.image_size={size!r}: the {config.model.arch} architecture "
        "doubles the size three times from size/8, so it needs a multiple of 8 (for example 32, "
        "64 or 128). Pass --config.data.image_size=<size>.")
  config_lib.check_number(config, "loss.real_label_min", low=0, high=1)
  config_lib.check_number(config, "loss.real_label_max", low=0, high=1)
  if config.loss.real_label_min > config.loss.real_label_max:
    raise ConfigError(
        f"Invalid config values loss.real_label_min={config.loss.real_label_min} and "
        f"loss.real_label_max={config.loss.real_label_max}: the minimum must not exceed the "
        "maximum.")
  config_lib.check_choice(config, "loss.d_reduction", ("sum", "mean"))

  config_lib.check_number(config, "loss.g_threshold", low=0, high=1)
  config_lib.check_number(config, "loss.real_noise_max", low=0)
  if not isinstance(config_lib.get(config, "data.random_flip"), bool):
    raise ConfigError(
        f"Invalid config value data.random_flip={config.data.random_flip!r}: must be True or "
        "False. Change it in the config file or pass --config.data.random_flip=<value>.")
