"""Tests for the w7 DCGAN models and the BatchNorm behaviour of the DCGAN train step.

The models are built at width 8 so that every test runs in seconds on a CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxgan.base_configs import dcgan as dcgan_config
from jaxgan.families import dcgan as dcgan_family
from jaxgan.models import dcgan

_WIDTH = 8
_LATENT_DIM = 100
_EPSILON = 5e-5

# image size -> D block output sizes s/2, s/4, s/4 + 1, s/8.
_BLOCK_SIZES = {32: (16, 8, 9, 4), 64: (32, 16, 17, 8), 128: (64, 32, 33, 16)}


def _generator(image_size: int) -> dcgan.W7Generator:
  return dcgan.W7Generator(image_size, _LATENT_DIM, _EPSILON, _WIDTH, rngs=nnx.Rngs(0))


def _discriminator(image_size: int) -> dcgan.W7Discriminator:
  return dcgan.W7Discriminator(image_size, _EPSILON, _WIDTH, rngs=nnx.Rngs(1))


def _images(key: int, batch: int, size: int) -> jax.Array:
  return jax.random.uniform(jax.random.key(key), (batch, size, size, 3), minval=-1.0, maxval=1.0)


def _flat_params(module: nnx.Module) -> dict[str, np.ndarray]:
  return {
      "/".join(str(part) for part in path): np.asarray(variable[...])
      for path, variable in nnx.to_flat_state(nnx.state(module, nnx.Param))
  }


def _numpy_bce(logits, target) -> float:
  x = np.asarray(logits, np.float64)
  t = float(target)
  return float(np.mean(t * np.logaddexp(0.0, -x) + (1 - t) * np.logaddexp(0.0, x)))


# Shapes


@pytest.mark.parametrize("image_size", [32, 64, 128])
@pytest.mark.parametrize("train", [True, False])
def test_generator_output_shape_and_range(image_size, train):
  generator = _generator(image_size)
  z = jax.random.normal(jax.random.key(2), (4, _LATENT_DIM))

  images = np.asarray(generator(z, train=train))

  assert images.shape == (4, image_size, image_size, 3)
  assert np.all(np.abs(images) < 1)
  assert images.std() > 0


@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_discriminator_logits_shape(image_size):
  discriminator = _discriminator(image_size)

  logits = discriminator(_images(2, 4, image_size), train=True)

  assert logits.shape == (4,)
  assert np.all(np.isfinite(logits))


@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_discriminator_block_sizes(image_size):
  discriminator = _discriminator(image_size)

  features = discriminator.features(_images(2, 2, image_size), train=False)

  assert [f.shape[1] for f in features] == list(_BLOCK_SIZES[image_size])
  assert [f.shape[2] for f in features] == list(_BLOCK_SIZES[image_size])
  assert [f.shape[3] for f in features] == [_WIDTH, 2 * _WIDTH, 4 * _WIDTH, 8 * _WIDTH]


@pytest.mark.parametrize("image_size, dense_features", [(32, 1024), (64, 4096), (128, 16384)])
def test_dense_layer_sizes(image_size, dense_features):
  # 8w * (s/8)^2 with w = 8: 64 * 16, 64 * 64 and 64 * 256.
  generator = _generator(image_size)
  discriminator = _discriminator(image_size)

  assert generator.dense.kernel.shape == (_LATENT_DIM, dense_features)
  assert discriminator.dense.kernel.shape == (dense_features, 1)


def test_generator_channels():
  generator = _generator(32)

  kernels = [conv.kernel.shape for conv in generator.up_convs]

  assert kernels == [(4, 4, 64, 32), (4, 4, 32, 16), (4, 4, 16, 8)]
  assert generator.to_rgb.kernel.shape == (3, 3, 8, 3)


@pytest.mark.parametrize("image_size", [12, 30])
def test_models_reject_size_not_multiple_of_8(image_size):
  with pytest.raises(ValueError, match=str(image_size)):
    _generator(image_size)
  with pytest.raises(ValueError, match=str(image_size)):
    _discriminator(image_size)


def test_build_rejects_unknown_arch():
  with pytest.raises(ValueError, match="'w9'"):
    dcgan.build("w9", 32, _LATENT_DIM, _EPSILON, _WIDTH, jax.random.key(0))


# BatchNorm placement and settings


def test_discriminator_first_block_has_no_batch_norm():
  discriminator = _discriminator(32)

  assert discriminator.norms[0] is None
  for norm in discriminator.norms[1:]:
    assert isinstance(norm, nnx.BatchNorm)


def test_batch_norm_settings():
  generator, discriminator = dcgan.build(
      "w7", 32, _LATENT_DIM, 3e-5, _WIDTH, jax.random.key(0))
  norms = list(generator.up_norms) + list(discriminator.norms[1:])

  assert len(norms) == 6
  for norm in norms:
    assert norm.epsilon == 3e-5
    assert norm.momentum == 0.9


# Initialization


def test_generator_init_biases_and_batch_norm():
  params = _flat_params(_generator(32))
  biases = {name: value for name, value in params.items() if name.endswith("bias")}
  scales = {name: value for name, value in params.items() if name.endswith("scale")}

  # dense, 3 transposed convs, 3 BatchNorms and to_rgb.
  assert len(biases) == 8
  assert len(scales) == 3
  for name, value in biases.items():
    np.testing.assert_array_equal(value, 0, err_msg=name)
  for name, value in scales.items():
    np.testing.assert_array_equal(value, 1, err_msg=name)


def test_discriminator_init_biases_and_batch_norm():
  params = _flat_params(_discriminator(32))
  biases = {name: value for name, value in params.items() if name.endswith("bias")}
  scales = {name: value for name, value in params.items() if name.endswith("scale")}

  # 4 convs, 3 BatchNorms and dense.
  assert len(biases) == 8
  assert len(scales) == 3
  for name, value in biases.items():
    np.testing.assert_array_equal(value, 0, err_msg=name)
  for name, value in scales.items():
    np.testing.assert_array_equal(value, 1, err_msg=name)


def test_init_kernels_glorot_std():
  # The first transposed conv kernel [4, 4, 8w, 4w] has std sqrt(2 / (16 * 64 + 16 * 32)).
  generator = dcgan.W7Generator(32, _LATENT_DIM, _EPSILON, 8, rngs=nnx.Rngs(0))

  kernel = np.asarray(generator.up_convs[0].kernel[...], np.float64)

  assert kernel.std() == pytest.approx(np.sqrt(2 / (16 * 64 + 16 * 32)), rel=0.05)


# The DCGAN train step


def _tiny_config():
  config = dcgan_config.get_config()
  config.data.image_size = 16
  config.data.batch_size = 4
  config.model.width = _WIDTH
  config.model.latent_dim = 8
  return config


@pytest.fixture(scope="module")
def step_setup():
  """Returns (config, initial state, jitted train step, real batch)."""
  config = _tiny_config()
  state = dcgan_family.FAMILY.init_state(config, steps_per_epoch=10)
  train_step = jax.jit(dcgan_family.FAMILY.make_train_step(config, steps_per_epoch=10))
  # Bright "real" images, so that their BatchNorm statistics differ clearly from the fakes'.
  noise = jax.random.normal(jax.random.key(5), (4, 16, 16, 3))
  real = jnp.clip(0.6 + 0.3 * noise, -1.0, 1.0)
  return config, state, train_step, real


def _merge(graphdef, *states) -> nnx.Module:
  # Without copy=True the module shares its variables with `states`, so a training-mode pass here
  # would change the running statistics in the shared fixture state.
  return nnx.merge(graphdef, *states, copy=True)


def _step_inputs(config, key, step):
  """Returns the z and real_target of a step, derived from `key` as the train step derives them."""
  z_key, label_key = jax.random.split(jax.random.fold_in(key, step))
  z = jax.random.normal(z_key, (config.data.batch_size, config.model.latent_dim))
  real_target = jax.random.uniform(
      label_key, (), minval=config.loss.real_label_min, maxval=config.loss.real_label_max)
  return z, real_target


def test_train_step_real_target_derivation(step_setup):
  config, state, train_step, real = step_setup
  key = jax.random.key(7)

  _, metrics = train_step(state, {"image": real}, key)

  _, real_target = _step_inputs(config, key, 0)
  assert float(metrics["real_target"]) == pytest.approx(float(real_target), rel=1e-6)


def test_train_step_d_loss_uses_separate_batch_stats(step_setup):
  config, state, train_step, real = step_setup
  key = jax.random.key(7)

  _, metrics = train_step(state, {"image": real}, key)

  z, real_target = _step_inputs(config, key, 0)
  generator = _merge(state.g_graphdef, state.g_params, state.g_stats)
  fakes = generator(z, train=True)
  real_logits = _merge(state.d_graphdef, state.d_params, state.d_stats)(real, train=True)
  fake_logits = _merge(state.d_graphdef, state.d_params, state.d_stats)(fakes, train=True)
  expected = _numpy_bce(real_logits, real_target) + _numpy_bce(fake_logits, 0.0)

  assert float(metrics["d_loss"]) == pytest.approx(expected, rel=1e-4)


def test_train_step_d_loss_differs_from_joint_pass(step_setup):
  # One pass over the concatenated batch would mix the real and fake BatchNorm statistics.
  config, state, train_step, real = step_setup
  key = jax.random.key(7)

  _, metrics = train_step(state, {"image": real}, key)

  z, real_target = _step_inputs(config, key, 0)
  generator = _merge(state.g_graphdef, state.g_params, state.g_stats)
  fakes = generator(z, train=True)
  discriminator = _merge(state.d_graphdef, state.d_params, state.d_stats)
  logits = discriminator(jnp.concatenate([real, fakes]), train=True)
  joint = _numpy_bce(logits[:4], real_target) + _numpy_bce(logits[4:], 0.0)

  assert abs(float(metrics["d_loss"]) - joint) > 1e-3


def test_train_step_d_real_independent_of_fakes(step_setup):
  _, state, train_step, real = step_setup

  _, first = train_step(state, {"image": real}, jax.random.key(7))
  _, second = train_step(state, {"image": real}, jax.random.key(8))

  # Another key draws other fakes, which D scores differently.
  assert float(first["d_fake"]) != pytest.approx(float(second["d_fake"]), rel=1e-4)
  assert float(first["d_real"]) == pytest.approx(float(second["d_real"]), rel=1e-6)


def test_train_step_real_target_in_smoothing_range(step_setup):
  _, state, train_step, real = step_setup
  key = jax.random.key(7)

  targets = []
  for step in range(40):
    _, metrics = train_step(state.replace(step=jnp.int32(step)), {"image": real}, key)
    targets.append(float(metrics["real_target"]))

  targets = np.array(targets)
  assert targets.min() >= 0.9
  assert targets.max() <= 1.0
  # 40 draws from U(0.9, 1.0) have a std near 0.029 and cover most of the range.
  assert targets.std() > 0.015
  assert targets.min() < 0.93
  assert targets.max() > 0.97


def test_train_step_generator_running_stats(step_setup):
  # After one step, running mean = 0.9 * 0 + 0.1 * batch mean, and running variance =
  # 0.9 * 1 + 0.1 * (biased) batch variance, of the first transposed conv's output.
  config, state, train_step, real = step_setup
  key = jax.random.key(7)

  new_state, _ = train_step(state, {"image": real}, key)

  z, _ = _step_inputs(config, key, 0)
  generator = _merge(state.g_graphdef, state.g_params, state.g_stats)
  x = nnx.leaky_relu(generator.dense(z), 0.2).reshape(4, 2, 2, 8 * _WIDTH)
  conv_out = np.asarray(generator.up_convs[0](x), np.float64)
  batch_mean = conv_out.mean(axis=(0, 1, 2))
  batch_var = conv_out.var(axis=(0, 1, 2))
  stats = new_state.g_stats["up_norms"][0]

  np.testing.assert_allclose(stats["mean"][...], 0.1 * batch_mean, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats["var"][...], 0.9 + 0.1 * batch_var, rtol=1e-4, atol=1e-6)


def test_train_step_advances_step(step_setup):
  _, state, train_step, real = step_setup

  new_state, metrics = train_step(state, {"image": real}, jax.random.key(7))

  assert int(new_state.step) == 1
  for name, value in metrics.items():
    assert np.isfinite(float(value)), name


# The reproduct architectures

_REPRODUCT_WIDTH = 4
# arch -> (kernel of the four upsampling convs, kernel shape of G's last layer at width 4).
_REPRODUCT_KERNELS = {"reproduct": (5, (5, 5, 4, 3)), "reproduct4": (4, (3, 3, 4, 3))}


def _reproduct_models(arch: str, image_size: int, init: str = "glorot_normal"):
  return dcgan.build(
      arch, image_size, _LATENT_DIM, _EPSILON, _REPRODUCT_WIDTH, jax.random.key(0), init=init)


@pytest.mark.parametrize("arch", ["reproduct", "reproduct4"])
@pytest.mark.parametrize("image_size", [32, 64])
def test_reproduct_output_shapes(arch, image_size):
  generator, discriminator = _reproduct_models(arch, image_size)
  z = jax.random.normal(jax.random.key(2), (4, _LATENT_DIM))

  images = generator(z, train=True)
  logits = discriminator(images, train=True)
  features = discriminator.features(images, train=False)

  assert images.shape == (4, image_size, image_size, 3)
  assert np.all(np.abs(np.asarray(images)) < 1)
  assert logits.shape == (4,)
  assert np.all(np.isfinite(logits))
  sizes = [image_size // 2, image_size // 4, image_size // 8, image_size // 8, image_size // 16]
  assert [f.shape[1] for f in features] == sizes
  assert [f.shape[3] for f in features] == [_REPRODUCT_WIDTH * m for m in (1, 2, 4, 8, 16)]


@pytest.mark.parametrize("arch", ["reproduct", "reproduct4"])
def test_reproduct_layer_shapes(arch):
  generator, discriminator = _reproduct_models(arch, 32)
  up_kernel, to_rgb_shape = _REPRODUCT_KERNELS[arch]

  # Dense to 16w * (s/16)^2 = 64 * 4 at width 4 and size 32.
  assert generator.dense.kernel.shape == (_LATENT_DIM, 256)
  assert [conv.kernel.shape for conv in generator.up_convs] == [
      (up_kernel, up_kernel, 64, 32), (up_kernel, up_kernel, 32, 16),
      (up_kernel, up_kernel, 16, 8), (up_kernel, up_kernel, 8, 4)]
  assert generator.to_rgb.kernel.shape == to_rgb_shape
  assert len(discriminator.norms) == 5
  assert discriminator.dense.kernel.shape == (256, 1)


def test_reproduct4_stride_1_block_is_3x3():
  _, discriminator = _reproduct_models("reproduct4", 32)

  assert [conv.kernel.shape[0] for conv in discriminator.convs] == [4, 4, 4, 3, 4]


@pytest.mark.parametrize("arch", ["reproduct", "reproduct4"])
def test_reproduct_rejects_size_not_multiple_of_16(arch):
  with pytest.raises(ValueError, match="24"):
    _reproduct_models(arch, 24)


# Weight initializers


def test_truncated_normal_init_std_and_bound():
  # A normal truncated at 2 std has std 0.8796 times the untruncated std.
  generator, discriminator = _reproduct_models("reproduct", 32, init="truncated_normal")
  kernels = [conv.kernel[...] for conv in generator.up_convs] + [
      conv.kernel[...] for conv in discriminator.convs]
  values = np.concatenate([np.asarray(k, np.float64).ravel() for k in kernels])

  assert values.size > 10_000
  assert values.std() == pytest.approx(0.02 * 0.8796, rel=0.03)
  assert np.abs(values).max() <= 0.04
  assert abs(values.mean()) < 1e-3


def test_truncated_normal_init_w7_dense():
  generator, discriminator = dcgan.build(
      "w7", 32, _LATENT_DIM, _EPSILON, _WIDTH, jax.random.key(0), init="truncated_normal")

  for kernel in (generator.dense.kernel[...], discriminator.dense.kernel[...]):
    values = np.asarray(kernel, np.float64)
    assert values.std() == pytest.approx(0.02 * 0.8796, rel=0.05)
    assert np.abs(values).max() <= 0.04


def test_build_default_init_is_glorot():
  default, _ = dcgan.build("w7", 32, _LATENT_DIM, _EPSILON, _WIDTH, jax.random.key(0))
  glorot, _ = dcgan.build(
      "w7", 32, _LATENT_DIM, _EPSILON, _WIDTH, jax.random.key(0), init="glorot_normal")

  for name, value in _flat_params(default).items():
    np.testing.assert_array_equal(value, _flat_params(glorot)[name], err_msg=name)


def test_build_rejects_unknown_init():
  with pytest.raises(ValueError, match="'he_normal'"):
    dcgan.build("w7", 32, _LATENT_DIM, _EPSILON, _WIDTH, jax.random.key(0), init="he_normal")
