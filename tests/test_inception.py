"""Tests of the FID Inception-v3: layer shapes, weight loading, batch independence."""

import functools

import jax
import numpy as np
import pytest
from flax import nnx

from jaxgan.evaluation import evaluator
from jaxgan.evaluation import inception


def abstract_network():
  return nnx.eval_shape(lambda: inception.InceptionV3(rngs=nnx.Rngs(0)))


def test_layer_shapes_at_299():
  network = abstract_network()

  def intermediate_shapes(model, images):
    x = images
    for layer in (model.Conv2d_1a_3x3, model.Conv2d_2a_3x3, model.Conv2d_2b_3x3):
      x = layer(x)
    x = inception._max_pool_reduce(x)  # pylint: disable=protected-access
    x = model.Conv2d_4a_3x3(model.Conv2d_3b_1x1(x))
    x = inception._max_pool_reduce(x)  # pylint: disable=protected-access
    shapes = {"stem": x}
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                 "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
      x = getattr(model, name)(x)
      shapes[name] = x
    features, logits = model(images)
    return shapes, features, logits

  images = jax.ShapeDtypeStruct((2, 299, 299, 3), np.float32)
  shapes, features, logits = nnx.eval_shape(intermediate_shapes, network, images)
  assert shapes["stem"].shape == (2, 35, 35, 192)
  assert shapes["Mixed_5b"].shape == (2, 35, 35, 256)
  assert shapes["Mixed_5d"].shape == (2, 35, 35, 288)
  assert shapes["Mixed_6a"].shape == (2, 17, 17, 768)
  assert shapes["Mixed_6e"].shape == (2, 17, 17, 768)
  assert shapes["Mixed_7a"].shape == (2, 8, 8, 1280)
  assert shapes["Mixed_7b"].shape == (2, 8, 8, 2048)
  assert shapes["Mixed_7c"].shape == (2, 8, 8, 2048)
  assert features.shape == (2, inception.FEATURE_SIZE)
  assert logits.shape == (2, inception.NUM_CLASSES)


@functools.lru_cache(maxsize=1)
def torch_layout_shapes() -> dict[str, tuple[int, ...]]:
  """State-dict names and PyTorch shapes that the loader expects."""
  _, state = inception.abstract_model()
  shapes = {}
  for path, variable in nnx.to_flat_state(state):
    name = inception._torch_name(path)  # pylint: disable=protected-access
    shape = variable.get_value().shape
    if name.endswith("conv.weight"):
      shape = (shape[3], shape[2], shape[0], shape[1])
    elif name == "fc.weight":
      shape = shape[::-1]
    shapes[name] = shape
  return shapes


def test_state_dict_names_follow_pytorch_fid():
  shapes = torch_layout_shapes()
  assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
  assert shapes["Conv2d_1a_3x3.bn.running_var"] == (32,)
  assert shapes["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
  assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
  assert shapes["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
  assert shapes["fc.weight"] == (1008, 2048)
  assert shapes["fc.bias"] == (1008,)
  # 94 convolutions with 5 arrays each (conv weight, BatchNorm weight, bias, mean, variance).
  assert len(shapes) == 94 * 5 + 2


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
  """A weights file in the standard layout with random values; returns (path, arrays).

  He-initialised convolutions and BatchNorm close to the identity keep the activations of
  different images apart through all 94 layers.
  """
  rng = np.random.default_rng(0)
  arrays = {}
  for name, shape in torch_layout_shapes().items():
    if name.endswith("conv.weight") or name == "fc.weight":
      fan_in = int(np.prod(shape[1:]))
      values = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif name.endswith(("running_var", "bn.weight")):
      values = rng.uniform(0.9, 1.1, shape)
    else:
      values = 0.01 * rng.standard_normal(shape)
    arrays[name] = values.astype(np.float32)
  arrays["Conv2d_1a_3x3.bn.num_batches_tracked"] = np.array(0)  # present in PyTorch files
  path = tmp_path_factory.mktemp("weights") / "inception.npz"
  np.savez(path, **arrays)
  return path, arrays


def test_load_standard_layout(random_weights):
  path, arrays = random_weights
  model, sha256 = inception.load(path)
  assert sha256 == inception.file_sha256(path)
  assert len(sha256) == 64
  np.testing.assert_array_equal(
      np.asarray(model.Mixed_5b.branch5x5_2.conv.kernel[...]),
      arrays["Mixed_5b.branch5x5_2.conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(np.asarray(model.Mixed_7c.branch1x1.bn.var[...]),
                                arrays["Mixed_7c.branch1x1.bn.running_var"])
  np.testing.assert_array_equal(np.asarray(model.fc.kernel[...]), arrays["fc.weight"].T)


@pytest.fixture(scope="module")
def small_extractor(random_weights):
  """A FeatureExtractor at 75 pixels, the smallest input the network accepts, for speed."""
  model, sha256 = inception.load(random_weights[0])
  return inception.FeatureExtractor(model, batch_size=3, input_size=75), sha256


def test_features_independent_of_batch(small_extractor):
  extractor, _ = small_extractor
  images = np.random.default_rng(1).integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
  together = extractor(images)
  alone = extractor(images[3:])
  assert together.shape == (4, inception.FEATURE_SIZE)
  assert np.all(np.isfinite(together))
  np.testing.assert_allclose(alone[0], together[3], rtol=1e-4, atol=1e-5)
  assert not np.allclose(together[0], together[1])


def test_missing_key_is_named(random_weights, tmp_path):
  _, arrays = random_weights
  broken = dict(arrays)
  del broken["Mixed_6c.branch1x1.bn.running_mean"]
  broken["fc.weight"] = broken["fc.weight"][:1000]
  path = tmp_path / "broken.npz"
  np.savez(path, **broken)
  with pytest.raises(inception.InceptionWeightsError) as error:
    inception.load(path)
  assert "missing Mixed_6c.branch1x1.bn.running_mean" in str(error.value)
  assert "fc.weight has shape (1000, 2048)" in str(error.value)


def test_missing_file_names_source(tmp_path, monkeypatch):
  monkeypatch.delenv(inception.ENV_VARIABLE, raising=False)
  with pytest.raises(inception.InceptionWeightsError) as error:
    inception.resolve_weights_path(tmp_path / "absent.npz")
  message = str(error.value)
  assert "absent.npz not found" in message
  assert inception.PTH_URL in message
  assert inception.PTH_SHA256_PREFIX in message
  assert inception.ENV_VARIABLE in message


def test_weights_path_from_environment(random_weights, monkeypatch):
  monkeypatch.setenv(inception.ENV_VARIABLE, str(random_weights[0]))
  assert inception.resolve_weights_path(None) == str(random_weights[0])


def test_fid_of_set_with_itself_is_zero(small_extractor, tmp_path):
  images = np.random.default_rng(2).integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
  reals = evaluator.RealImages(images=images, source_name="random", fingerprint="f" * 64)
  settings = {"step": 1, "seed": 0, "batchnorm_mode": "inference", "ema": False,
              "truncation": None}
  first = evaluator.Evaluator(["fid", "kid"], reals, cache_dir=str(tmp_path),
                              extractor=small_extractor, kid_subset_size=4, kid_subsets=3)
  fid, kid = first.evaluate(images, settings)
  assert fid["value"] == pytest.approx(0.0, abs=1e-3)
  assert fid["settings"]["weights_sha256"] == small_extractor[1]
  assert "75x75" in fid["settings"]["resize_method"]
  assert kid["metric"] == "kid"
  (cache_file,) = tmp_path.glob("*.npz")
  written = cache_file.stat().st_mtime_ns

  # A second evaluator reads the cached reference features instead of computing them. KID is
  # used here because one FID on 2048-d features costs seconds of CPU.
  second = evaluator.Evaluator(["kid"], reals, cache_dir=str(tmp_path), extractor=small_extractor,
                               kid_subset_size=4, kid_subsets=3)
  shifted = np.clip(images.astype(np.int32) + 40, 0, 255).astype(np.uint8)
  (shifted_kid,) = second.evaluate(shifted, settings)
  assert shifted_kid["value"] > kid["value"]
  assert list(tmp_path.glob("*.npz")) == [cache_file]
  assert cache_file.stat().st_mtime_ns == written
