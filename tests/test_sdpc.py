"""SDPC dictionaries and inference against explicit matrices and scikit-learn's Lasso."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.sdpc import dictionary as dictionary_lib
from jaxgan.sdpc import inference

_LAYERS = dictionary_lib.make_geometry(
    image_size=10, image_channels=2, atoms=(4, 3), kernel_sizes=(4, 3), strides=(2, 1))


def _dictionaries(seed=0, layers=_LAYERS):
  keys = jax.random.split(jax.random.key(seed), len(layers))
  return tuple(dictionary_lib.init_dictionary(key, layer) for key, layer in zip(keys, layers))


def _images(seed=1, batch=3, size=10, channels=2):
  return jax.random.normal(jax.random.key(seed), (batch, size, size, channels))


def test_geometry_chains_code_sizes():
  assert [layer.code_size for layer in _LAYERS] == [4, 2]
  assert _LAYERS[1].input_size == 4
  assert _LAYERS[1].channels == 4


def test_geometry_rejects_small_input():
  with pytest.raises(ValueError, match="smaller than its"):
    dictionary_lib.make_geometry(6, 3, (4, 4), (5, 5), (1, 1))


@pytest.mark.parametrize("layer_index", [0, 1])
def test_synthesis_is_adjoint_of_analysis(layer_index):
  layer = _LAYERS[layer_index]
  atoms = _dictionaries()[layer_index]
  x = jax.random.normal(jax.random.key(2), (2, layer.input_size, layer.input_size, layer.channels))
  g = jax.random.normal(jax.random.key(3), (2, layer.code_size, layer.code_size, layer.atoms))
  left = jnp.sum(dictionary_lib.analyze(x, atoms, layer.stride) * g)
  right = jnp.sum(x * dictionary_lib.synthesize(g, atoms, layer.stride, layer.input_size))
  assert float(left) == pytest.approx(float(right), rel=1e-5)


def test_step_size_matches_spectral_norm():
  dictionaries = _dictionaries()
  for layer, atoms in zip(_LAYERS, dictionaries):
    matrix = dictionary_lib.explicit_matrix(np.asarray(atoms), layer)
    expected = np.linalg.norm(matrix, ord=2) ** 2
    estimate = dictionary_lib.max_eigenvalue(atoms, layer, 100, jax.random.key(0))
    assert float(estimate) == pytest.approx(expected, rel=1e-3)

  etas = inference.step_sizes(dictionaries, _LAYERS, 1.5, 100, jax.random.key(0))
  top = np.linalg.norm(dictionary_lib.explicit_matrix(np.asarray(dictionaries[1]), _LAYERS[1]),
                       ord=2) ** 2
  bottom = np.linalg.norm(
      dictionary_lib.explicit_matrix(np.asarray(dictionaries[0]), _LAYERS[0]), ord=2) ** 2
  assert float(etas[0]) == pytest.approx(1 / (bottom + 1.5), rel=1e-3)
  assert float(etas[1]) == pytest.approx(1 / top, rel=1e-3)


@pytest.mark.parametrize("k_fb", [0.25, 1.0, 3.0])
def test_ista_never_increases_energy(k_fb):
  dictionaries = _dictionaries()
  images = _images()
  settings = inference.InferenceSettings(
      lambdas=(0.1, 0.2), k_fb=k_fb, solver="ista", max_iterations=1, tolerance=0.0)
  etas = inference.step_sizes(dictionaries, _LAYERS, k_fb, 100, jax.random.key(0))
  codes = inference.zero_codes(images.shape[0], _LAYERS)
  energies = [inference.energy(images, codes, dictionaries, _LAYERS, settings)]
  for _ in range(40):
    codes = inference.infer(images, dictionaries, _LAYERS, settings, etas, codes).codes
    energies.append(inference.energy(images, codes, dictionaries, _LAYERS, settings))
  energies = np.stack([np.asarray(e) for e in energies])
  increases = np.diff(energies, axis=0)
  assert np.all(increases <= 1e-4 * np.abs(energies[:-1]) + 1e-5), increases.max()
  assert np.all(energies[-1] < energies[0])


def test_no_feedback_gives_stacked_nonnegative_lasso():
  sklearn_linear = pytest.importorskip("sklearn.linear_model")
  dictionaries = _dictionaries()
  images = _images(batch=2)
  lambdas = (0.05, 0.05)
  settings = inference.InferenceSettings(
      lambdas=lambdas, k_fb=0.0, solver="fista", max_iterations=3000, tolerance=1e-9)
  etas = inference.step_sizes(dictionaries, _LAYERS, 0.0, 100, jax.random.key(0))
  codes = inference.infer(images, dictionaries, _LAYERS, settings, etas).codes

  below = np.asarray(images, np.float64)
  for index, layer in enumerate(_LAYERS):
    matrix = dictionary_lib.explicit_matrix(np.asarray(dictionaries[index]), layer)
    for image in range(images.shape[0]):
      target = below[image].reshape(-1)
      # scikit-learn minimises 1/(2n) ||y - Xw||^2 + alpha ||w||_1 with n = len(y).
      lasso = sklearn_linear.Lasso(
          alpha=lambdas[index] / target.size, positive=True, fit_intercept=False,
          max_iter=100000, tol=1e-8)
      lasso.fit(matrix, target)
      ours = np.asarray(codes[index][image]).reshape(-1)
      np.testing.assert_allclose(ours, lasso.coef_, atol=2e-3)
    below = np.asarray(codes[index], np.float64)


def test_planted_atoms_recovered_with_their_support():
  layers = dictionary_lib.make_geometry(8, 1, (6,), (4,), (4,))
  atoms = dictionary_lib.init_dictionary(jax.random.key(5), layers[0])
  code = np.zeros((1, 2, 2, 6), np.float32)
  code[0, 0, 1, 2] = 2.0
  code[0, 1, 0, 4] = 1.5
  signal = dictionary_lib.synthesize(jnp.asarray(code), atoms, 4, 8)
  settings = inference.InferenceSettings(
      lambdas=(0.01,), k_fb=0.0, solver="fista", max_iterations=2000, tolerance=1e-8)
  etas = inference.step_sizes((atoms,), layers, 0.0, 100, jax.random.key(0))
  result = inference.infer(signal, (atoms,), layers, settings, etas)
  recovered = np.asarray(result.codes[0])
  support = np.argwhere(recovered > 0.1)
  np.testing.assert_array_equal(support, np.argwhere(code > 0))
  np.testing.assert_allclose(recovered[code > 0], code[code > 0], atol=0.05)


def test_batched_inference_equals_single_images():
  dictionaries = _dictionaries()
  images = _images(batch=4)
  settings = inference.InferenceSettings(
      lambdas=(0.1, 0.2), k_fb=1.0, solver="fista", max_iterations=200, tolerance=1e-3)
  etas = inference.step_sizes(dictionaries, _LAYERS, 1.0, 50, jax.random.key(0))
  infer = jax.jit(lambda x: inference.infer(x, dictionaries, _LAYERS, settings, etas))
  batched = infer(images)
  for index in range(images.shape[0]):
    single = infer(images[index:index + 1])
    assert int(single.iterations[0]) == int(batched.iterations[index])
    for layer in range(len(_LAYERS)):
      np.testing.assert_allclose(single.codes[layer][0], batched.codes[layer][index], atol=1e-5)


def test_tolerance_stops_before_the_cap():
  dictionaries = _dictionaries()
  settings = inference.InferenceSettings(
      lambdas=(0.1, 0.2), k_fb=1.0, solver="fista", max_iterations=1000, tolerance=1e-2)
  etas = inference.step_sizes(dictionaries, _LAYERS, 1.0, 50, jax.random.key(0))
  result = inference.infer(_images(), dictionaries, _LAYERS, settings, etas)
  iterations = np.asarray(result.iterations)
  assert np.all(iterations >= 3)
  assert np.all(iterations < 1000)


def test_codes_are_nonnegative():
  dictionaries = _dictionaries()
  settings = inference.InferenceSettings(lambdas=(0.05, 0.1), k_fb=1.0, max_iterations=50)
  etas = inference.step_sizes(dictionaries, _LAYERS, 1.0, 50, jax.random.key(0))
  result = inference.infer(_images(), dictionaries, _LAYERS, settings, etas)
  for code in result.codes:
    assert float(jnp.min(code)) >= 0.0


def test_receptive_fields_shape_and_first_layer():
  dictionaries = _dictionaries()
  first = dictionary_lib.receptive_fields(dictionaries, _LAYERS, 1)
  np.testing.assert_allclose(first, jnp.transpose(dictionaries[0], (3, 0, 1, 2)), atol=1e-6)
  second = dictionary_lib.receptive_fields(dictionaries, _LAYERS, 2)
  assert second.shape == (3, 4 + (3 - 1) * 2, 8, 2)


def test_unrolled_inference_matches_loop_and_differentiates():
  dictionaries = _dictionaries()
  images = _images(batch=2)
  settings = inference.InferenceSettings(
      lambdas=(0.1, 0.2), k_fb=1.0, solver="fista", max_iterations=12, tolerance=0.0)
  etas = inference.step_sizes(dictionaries, _LAYERS, 1.0, 50, jax.random.key(0))
  looped = inference.infer(images, dictionaries, _LAYERS, settings, etas).codes
  unrolled = inference.infer_unrolled(images, dictionaries, _LAYERS, settings, etas, 12)
  for a, b in zip(looped, unrolled):
    np.testing.assert_allclose(a, b, atol=1e-5)

  def total_code(x):
    codes = inference.infer_unrolled(x, dictionaries, _LAYERS, settings, etas, 12)
    return sum(jnp.sum(code) for code in codes)

  gradient = jax.grad(total_code)(images)
  assert gradient.shape == images.shape
  assert float(jnp.max(jnp.abs(gradient))) > 0
