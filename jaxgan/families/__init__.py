"""Model families: each module here plugs one kind of GAN into the shared trainer.

A family is a module `jaxgan.families.<name>` (selected by `config.model.family`) that defines a
`Family` subclass instance named `FAMILY`. Adding a family means adding a module; the trainer,
checkpointing, writers and input pipeline stay as they are.

This package module imports no JAX, so that `validate_config` can check a config before JAX and
TensorFlow are imported. A family whose checks need no JAX puts them in
`jaxgan.config_checks.<name>`, and its `validate` calls that module.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import pkgutil
from typing import TYPE_CHECKING, Any, Callable, Iterator

import ml_collections
import numpy as np

from jaxgan import config_lib
from jaxgan.errors import ConfigError

if TYPE_CHECKING:
  import jax

# (state, batch, key) -> (state, metrics). `batch` maps names to global arrays, for example
# {"image": float32 [B, s, s, 3] in [-1, 1]}; metrics are scalar arrays.
TrainStep = Callable[
    [Any, dict[str, "jax.Array"], "jax.Array"], tuple[Any, dict[str, "jax.Array"]]]


class Family(abc.ABC):
  """Interface between the shared trainer and one model family.

  The data hooks (make_source, epoch_batches, batch_spec) default to one image source with
  batches {"image": [B, s, s, 3]}. A family with other inputs, such as two domains or class
  labels, overrides all three together.
  """

  # Metrics shown in the progress log lines, when the step returns them.
  progress_metrics: tuple[str, ...] = ("d_loss", "g_loss", "d_real", "d_fake")

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

  def make_source(self, config: ml_collections.ConfigDict) -> Any:
    """Creates the training data source, checking it before the workdir is created.

    The trainer reads `num_images` (the images in one epoch), `image_size` and `name` from it.
    """
    from jaxgan.data import pipeline  # pylint: disable=g-import-not-at-top

    return pipeline.make_source(config)

  def epoch_batches(
      self,
      source: Any,
      config: ml_collections.ConfigDict,
      *,
      epoch: int,
      start_batch: int,
      sharding: Any,
  ) -> Iterator[dict[str, np.ndarray]]:
    """Yields this process's part of each batch of `epoch` from `start_batch`, as NumPy arrays.

    The order must depend only on (config.seed, epoch), so that a resumed run gets the batches
    it would have got without the stop.
    """
    from jaxgan.data import pipeline  # pylint: disable=g-import-not-at-top

    dataset = pipeline.make_epoch_dataset(
        source, seed=config.seed, epoch=epoch, global_batch_size=config.data.batch_size,
        start_batch=start_batch, sharding=sharding,
        prefetch_batches=config.data.prefetch_batches)
    return pipeline.iterate_epoch(dataset)

  def batch_spec(
      self, config: ml_collections.ConfigDict, source: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """Returns the global shape and dtype of each batch entry; all are split over devices."""
    import jax  # pylint: disable=g-import-not-at-top,redefined-outer-name
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    size = source.image_size
    return {"image": jax.ShapeDtypeStruct((config.data.batch_size, size, size, 3), jnp.float32)}

  def grid_shape(self, config: ml_collections.ConfigDict) -> tuple[int, int]:
    """Returns the (rows, columns) of the sample grid; `generate` returns rows * columns images."""
    del config
    return (5, 5)

  def epoch_metrics(
      self, config: ml_collections.ConfigDict, epoch_means: dict[str, float]) -> dict[str, float]:
    """Returns extra per-epoch scalars computed from the epoch's metric means, such as monitor
    flags; it may log warnings. The trainer records them with the means. The default returns
    an empty dict."""
    del config, epoch_means
    return {}

  @abc.abstractmethod
  def fixed_latents(self, config: ml_collections.ConfigDict, num: int) -> Any:
    """Returns the generator inputs of the sample grid, derived from config.seed only.

    For latent-space GANs these are `num` latent vectors. Other families may return any pytree
    of arrays, such as fixed test images or class labels, and the trainer passes it to
    `generate` unchanged.
    """

  def evaluation_latents(self, config: ml_collections.ConfigDict, num: int) -> Any:
    """Returns the generator inputs of `num` images for evaluation, derived from config.seed only.

    Leaves with a leading axis of length `num` are per-image inputs, and scalar leaves apply to
    every image. The default returns `fixed_latents(config, num)`.
    """
    return self.fixed_latents(config, num)

  @abc.abstractmethod
  def generate(self, state: Any, latents: Any) -> jax.Array:
    """Maps `fixed_latents` to images in [-1, 1] with the networks in inference mode (jit-able)."""

  def sample_info(self, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Returns JSON-compatible facts about how the sample grids are drawn, such as which weights.

    The trainer saves them next to every grid, as samples/epoch_NNNN.json; an empty dict (the
    default) saves nothing.
    """
    del config
    return {}


def available() -> list[str]:
  """Returns the names of the family modules in this package."""
  return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def _check_name(name: str) -> None:
  if name not in available():
    raise ConfigError(
        f"Invalid config value model.family={name!r}: must be one of {', '.join(available())}. "
        "Change it in the config file or pass --config.model.family=<name>.")


def get(name: str) -> Family:
  """Imports `jaxgan.families.<name>` and returns its FAMILY."""
  _check_name(name)
  module = importlib.import_module(f"{__name__}.{name}")
  return module.FAMILY


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for an invalid value: first the shared keys, then the family's keys.

  The checks of a family with a module `jaxgan.config_checks.<name>` (dcgan, cyclegan) run
  without importing JAX or TensorFlow. Other families (biggan, sdpc) are imported for their
  `validate`, which imports JAX.
  """
  name = config_lib.get(config, "model.family")
  _check_name(name)
  config_lib.validate_common(config)
  checks_name = f"jaxgan.config_checks.{name}"
  if importlib.util.find_spec(checks_name) is not None:
    importlib.import_module(checks_name).validate(config)
  else:
    get(name).validate(config)
