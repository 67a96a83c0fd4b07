"""GAN architectures fused with pretrained SDPC dictionaries (see jaxgan/sdpc).

"sdpc_generator" (sparse-code generator): a small convolutional trunk maps z to a map of top-layer
SDPC codes, made sparse and non-negative by ReLU(u - tau) with a learned per-atom threshold tau;
the image is that code map decoded to pixels through the frozen dictionaries,
D_1^T ... D_L^T gamma_L. An L1 penalty beta * ||gamma_L||_1 (mean over the batch) is added to
G's loss through the gradient of the code map. The discriminator is w7's.

"sdpc_discriminator": the image goes through a fixed number of unrolled FISTA iterations with
the frozen dictionaries. A small convolutional head then reads the layer-1 codes and their
top-down prediction error, gamma_1 - D_2^T gamma_2. The generator is w7's.

The dictionaries come from a finished run of the "sdpc" family at the same image size
(config.model.sdpc_workdir) and are stored in the GAN's state and checkpoints, frozen.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from jaxgan import checkpoint
from jaxgan.config_checks import dcgan as dcgan_checks
from jaxgan.errors import ConfigError
from jaxgan.models import dcgan as dcgan_models
from jaxgan.models import layers
from jaxgan.sdpc import dictionary as dictionary_lib
from jaxgan.sdpc import inference

LEAKY_SLOPE = dcgan_models.LEAKY_SLOPE


class FrozenDictionary(nnx.BatchStat):
  """A pretrained SDPC dictionary inside a GAN network.

  It subclasses nnx.BatchStat so that the DCGAN family stores it with the BatchNorm statistics:
  checkpointed, never given to the optimizer, and unchanged by the train step.
  """


@dataclasses.dataclass(frozen=True)
class PretrainedSDPC:
  """Dictionaries [k, k, C_i, K_i] of a finished SDPC run and the settings they were learned with."""

  dictionaries: tuple[np.ndarray, ...]
  layers: tuple[dictionary_lib.LayerGeometry, ...]
  settings: inference.InferenceSettings
  step: int


def load_pretrained(workdir: str, image_size: int) -> PretrainedSDPC:
  """Restores the newest dictionaries of an "sdpc" run; raises ConfigError when unusable."""
  # Imported here: the family module imports this one through the DCGAN family.
  from jaxgan.families import sdpc as sdpc_family  # pylint: disable=g-import-not-at-top

  config_path = os.path.join(workdir, "config.json")
  if not workdir or not os.path.isfile(config_path):
    raise ConfigError(
        f"Invalid config value model.sdpc_workdir={workdir!r}: no SDPC run found there (missing "
        f"{config_path}). Train dictionaries first, for example with configs/sdpc_simpsons.py, "
        "and pass its --workdir as --config.model.sdpc_workdir.")
  with open(config_path) as f:
    sdpc_config = ml_collections.ConfigDict(json.load(f))
  for key in ("atoms", "kernel_sizes", "strides", "lambdas"):
    sdpc_config.model[key] = tuple(sdpc_config.model[key])
  if sdpc_config.model.family != "sdpc":
    raise ConfigError(
        f"Invalid config value model.sdpc_workdir={workdir!r}: it is a run of the "
        f"{sdpc_config.model.family!r} family, not 'sdpc'.")
  if sdpc_config.data.image_size != image_size:
    raise ConfigError(
        f"Invalid config value model.sdpc_workdir={workdir!r}: its dictionaries were learned at "
        f"{sdpc_config.data.image_size}x{sdpc_config.data.image_size}, but data.image_size is "
        f"{image_size}. Use an SDPC run at the same size.")

  checkpointer = checkpoint.Checkpointer(workdir, keep=1000, read_only=True)
  try:
    step = checkpointer.latest_step()
    if step is None:
      raise ConfigError(
          f"Invalid config value model.sdpc_workdir={workdir!r}: the run has no checkpoint yet. "
          "Let it finish at least one checkpointed epoch.")
    template = sdpc_family.FAMILY.init_state(sdpc_config, 1)
    state, _ = checkpointer.restore(step, template)
  finally:
    checkpointer.close()
  return PretrainedSDPC(
      dictionaries=tuple(np.asarray(atoms) for atoms in state.dictionaries),
      layers=sdpc_family.layer_geometry(sdpc_config),
      settings=sdpc_family.inference_settings(sdpc_config), step=step)


@jax.custom_vjp
def _with_l1_gradient(codes: jax.Array, weight: jax.Array) -> jax.Array:
  """Returns `codes` unchanged; the backward pass adds the gradient of weight * mean L1 norm."""
  return codes


def _with_l1_forward(codes, weight):
  return codes, (codes, weight)


def _with_l1_backward(residuals, gradient):
  codes, weight = residuals
  penalty_gradient = weight * jnp.sign(codes) / codes.shape[0]
  return gradient + penalty_gradient, jnp.zeros_like(weight)


_with_l1_gradient.defvjp(_with_l1_forward, _with_l1_backward)


class SparseCodeGenerator(nnx.Module):
  """z [B, latent_dim] -> top-layer SDPC codes -> images [B, s, s, 3] through frozen dictionaries."""

  def __init__(
      self, image_size: int, latent_dim: int, bn_epsilon: float, width: int, *,
      pretrained: PretrainedSDPC, sparsity_weight: float, init: str = "glorot_normal",
      rngs: nnx.Rngs):
    del image_size
    self.layers = pretrained.layers
    top = self.layers[-1]
    self.code_size, self.num_atoms = top.code_size, top.atoms
    self.trunk_channels = 4 * width
    self.sparsity_weight = sparsity_weight
    kernel_init = layers.make_initializer(init)
    self.dense = nnx.Linear(
        latent_dim, self.trunk_channels * self.code_size**2, kernel_init=kernel_init,
        bias_init=nnx.initializers.zeros, rngs=rngs)
    self.norm_0 = dcgan_models.batch_norm(self.trunk_channels, bn_epsilon, rngs)
    self.conv_1 = layers.Conv(self.trunk_channels, 2 * width, 3, 1, 1, kernel_init=kernel_init,
                              rngs=rngs)
    self.norm_1 = dcgan_models.batch_norm(2 * width, bn_epsilon, rngs)
    self.to_codes = layers.Conv(2 * width, self.num_atoms, 3, 1, 1, kernel_init=kernel_init,
                                rngs=rngs)
    # softplus(-2) = 0.13: a small initial threshold, so most codes start active.
    self.threshold = nnx.Param(jnp.full((self.num_atoms,), -2.0))
    self.dictionaries = nnx.List(
        [FrozenDictionary(jnp.asarray(atoms)) for atoms in pretrained.dictionaries])

  def codes(self, z: jax.Array, *, train: bool) -> jax.Array:
    """Returns the sparse non-negative top-layer code map [B, h, h, K]."""
    x = self.dense(z).reshape(z.shape[0], self.code_size, self.code_size, self.trunk_channels)
    x = nnx.leaky_relu(self.norm_0(x, use_running_average=not train), LEAKY_SLOPE)
    x = nnx.leaky_relu(self.norm_1(self.conv_1(x), use_running_average=not train), LEAKY_SLOPE)
    u = self.to_codes(x)
    codes = jax.nn.relu(u - jax.nn.softplus(self.threshold[...]))
    return _with_l1_gradient(codes, jnp.asarray(self.sparsity_weight, codes.dtype))

  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    dictionaries = tuple(variable[...] for variable in self.dictionaries)
    return inference.back_project(
        self.codes(z, train=train), len(self.layers), dictionaries, self.layers)


class SDPCDiscriminator(nnx.Module):
  """images [B, s, s, 3] -> unrolled SDPC inference -> head on codes and prediction errors -> [B]."""

  def __init__(
      self, image_size: int, bn_epsilon: float, width: int, *, pretrained: PretrainedSDPC,
      unrolled_steps: int, init: str = "glorot_normal", rngs: nnx.Rngs):
    del image_size
    if len(pretrained.layers) < 2:
      raise ValueError("the SDPC discriminator needs dictionaries of at least two layers")
    self.layers = pretrained.layers
    self.settings = pretrained.settings
    self.unrolled_steps = unrolled_steps
    self.dictionaries = nnx.List(
        [FrozenDictionary(jnp.asarray(atoms)) for atoms in pretrained.dictionaries])
    # The dictionaries are frozen, so their step sizes are fixed: computed once, here.
    etas = inference.step_sizes(
        tuple(jnp.asarray(atoms) for atoms in pretrained.dictionaries), self.layers,
        self.settings.k_fb, 100, jax.random.key(0))
    self.etas = tuple(float(eta) for eta in etas)

    kernel_init = layers.make_initializer(init)
    first = self.layers[0]
    self.conv_1 = layers.Conv(2 * first.atoms, width, 4, 2, 1, kernel_init=kernel_init, rngs=rngs)
    self.conv_2 = layers.Conv(width, 2 * width, 4, 2, 1, kernel_init=kernel_init, rngs=rngs)
    self.norm_2 = dcgan_models.batch_norm(2 * width, bn_epsilon, rngs)
    size = (first.code_size + 2 - 4) // 2 + 1
    size = (size + 2 - 4) // 2 + 1
    self.dense = nnx.Linear(2 * width * size**2, 1, kernel_init=kernel_init,
                            bias_init=nnx.initializers.zeros, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    dictionaries = tuple(variable[...] for variable in self.dictionaries)
    codes = inference.infer_unrolled(
        x, dictionaries, self.layers, self.settings, self.etas, self.unrolled_steps)
    second = self.layers[1]
    prediction = dictionary_lib.synthesize(
        codes[1], dictionaries[1], second.stride, second.input_size)
    features = jnp.concatenate([codes[0], codes[0] - prediction], axis=-1)
    h = nnx.leaky_relu(self.conv_1(features), LEAKY_SLOPE)
    h = self.norm_2(nnx.leaky_relu(self.conv_2(h), LEAKY_SLOPE), use_running_average=not train)
    return self.dense(h.reshape(h.shape[0], -1))[:, 0]


FUSION_ARCHITECTURES = dcgan_checks.FUSION_ARCHITECTURES


def build(config: ml_collections.ConfigDict, key: jax.Array):
  """Builds (generator, discriminator) of a fusion architecture named by config.model.arch."""
  model = config.model
  pretrained = load_pretrained(model.sdpc_workdir, config.data.image_size)
  g_key, d_key = jax.random.split(key)
  size = config.data.image_size
  if model.arch == "sdpc_generator":
    generator = SparseCodeGenerator(
        size, model.latent_dim, model.bn_epsilon, model.width, pretrained=pretrained,
        sparsity_weight=model.sdpc_sparsity_weight, init=model.init, rngs=nnx.Rngs(params=g_key))
    discriminator = dcgan_models.W7Discriminator(
        size, model.bn_epsilon, model.width, init=model.init, rngs=nnx.Rngs(params=d_key))
  elif model.arch == "sdpc_discriminator":
    generator = dcgan_models.W7Generator(
        size, model.latent_dim, model.bn_epsilon, model.width, init=model.init,
        rngs=nnx.Rngs(params=g_key))
    discriminator = SDPCDiscriminator(
        size, model.bn_epsilon, model.width, pretrained=pretrained,
        unrolled_steps=model.sdpc_unrolled_steps, init=model.init, rngs=nnx.Rngs(params=d_key))
  else:
    raise ValueError(f"unknown fusion architecture {model.arch!r}; known: {FUSION_ARCHITECTURES}")
  return generator, discriminator
