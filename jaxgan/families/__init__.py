"""Model families: each module here plugs one kind of GAN into the shared trainer.

A family is a module `jaxgan.families.<name>` (selected by `config.model.family`) that defines a
`Family` subclass instance named `FAMILY`. Adding a family means adding a module; the trainer,
checkpointing, writers and input pipeline stay as they are.
"""

import abc
import importlib
import pkgutil
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from jaxgan.errors import ConfigError

# (state, batch, key) -> (state, metrics). `batch` maps names to global arrays, for example
# {"image": float32 [B, s, s, 3] in [-1, 1]}; metrics are scalar arrays.
TrainStep = Callable[[Any, dict[str, jax.Array], jax.Array], tuple[Any, dict[str, jax.Array]]]


class Family(abc.ABC):
  """Interface between the shared trainer and one model family."""

  @abc.abstractmethod
  def validate(self, config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for values this family cannot train with."""

  @abc.abstractmethod
  def init_state(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> Any:
    """Returns the initial train state: a pytree of arrays (plus static fields), step 0."""

  @abc.abstractmethod
  def make_train_step(self, config: ml_collections.ConfigDict, steps_per_epoch: int) -> TrainStep:
    """Returns the pure train step; the trainer jits it with shardings."""

  def step_inputs(self, config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """Returns scalar arrays that the trainer adds to every batch, replicated on every device.

    They carry config values into the jitted step as inputs, not as constants, so the step
    compiles once whatever their values. The default implementation returns an empty dict. The
    trainer adds "lr_scale", a float32 factor that the step must apply to every optimizer update
    (1 unless a rollback after a non-finite loss lowered it).
    """
    del config
    return {}

  @abc.abstractmethod
  def fixed_latents(self, config: ml_collections.ConfigDict, num: int) -> jax.Array:
    """Returns `num` latent inputs derived from config.seed only, for sample grids."""

  @abc.abstractmethod
  def generate(self, state: Any, latents: jax.Array) -> jax.Array:
    """Maps latents to images in [-1, 1] with the generator in inference mode (jit-able)."""


def available() -> list[str]:
  """Returns the names of the family modules in this package."""
  return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def get(name: str) -> Family:
  """Imports `jaxgan.families.<name>` and returns its FAMILY."""
  if name not in available():
    raise ConfigError(
        f"Invalid config value model.family={name!r}: must be one of {', '.join(available())}. "
        "Change it in the config file or pass --config.model.family=<name>.")
  module = importlib.import_module(f"{__name__}.{name}")
  return module.FAMILY
