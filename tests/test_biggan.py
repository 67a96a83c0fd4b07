"""Tests of the BigGAN-lite family: layers, losses, EMA, sampling, augmentation, data, training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from jaxgan import checkpoint
from jaxgan import diffaugment
from jaxgan import families
from jaxgan import losses
from jaxgan import train
from jaxgan.base_configs import biggan as biggan_config
from jaxgan.data import labeled
from jaxgan.data import pipeline
from jaxgan.data import source as source_lib
from jaxgan.errors import ConfigError
from jaxgan.errors import DataError
from jaxgan.evaluation import grid as sample_grid
from jaxgan.evaluation import runs
from jaxgan.families import biggan as biggan_family
from jaxgan.models import biggan as biggan_models

REPO = Path(__file__).resolve().parents[1]

_CLASS_COLORS = {"apple": (200, 30, 30), "kiwi": (30, 180, 40), "plum": (90, 30, 160)}


def tiny_arch(num_classes: int = 3) -> biggan_models.Architecture:
  return biggan_models.Architecture(
      image_size=16, width=4, g_multipliers=(2, 1), d_multipliers=(1, 2, 2),
      attention_resolution=8, latent_dim=6, num_classes=num_classes, embed_dim=4)


def tiny_config(data_dir: Path, num_epochs: int = 2) -> ml_collections.ConfigDict:
  config = biggan_config.get_config()
  config.data.source = "folder"
  config.data.dir = str(data_dir)
  config.data.image_size = 16
  config.data.batch_size = 8
  config.data.num_threads = 1
  config.model.num_classes = len(_CLASS_COLORS)
  config.model.width = 4
  config.model.g_multipliers = (2, 1)
  config.model.d_multipliers = (1, 2, 2)
  config.model.attention_resolution = 8
  config.model.latent_dim = 6
  config.model.embed_dim = 4
  config.model.ema_decay = 0.5
  config.model.ema_start_step = 2
  config.sample.grid_columns = 2
  config.sample.truncation = 1.0
  config.train.num_epochs = num_epochs
  config.train.checkpoint_every_epochs = 1
  config.train.log_every_steps = 1
  return config


def write_class_folders(root: Path, per_class: int = 6, size: int = 20) -> None:
  """Writes per_class PNGs per class: a plain colour square with a little per-image noise."""
  rng = np.random.default_rng(0)
  for name, color in _CLASS_COLORS.items():
    folder = root / name
    folder.mkdir(parents=True)
    for index in range(per_class):
      pixels = np.clip(np.array(color) + rng.integers(-20, 20, (size, size, 3)), 0, 255)
      Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.png")


# Spectral normalisation and attention.


def test_spectral_norm_converges_to_largest_singular_value():
  rng = np.random.default_rng(0)
  for shape in [(5, 3), (4, 7), (6, 6)]:
    matrix = jnp.asarray(rng.normal(size=shape), jnp.float32)
    u = jnp.asarray(rng.normal(size=shape[0]), jnp.float32)
    for _ in range(100):
      sigma, u = biggan_models.spectral_norm_estimate(matrix, u, iterate=True)
    largest = np.linalg.svd(np.asarray(matrix), compute_uv=False)[0]
    np.testing.assert_allclose(float(sigma), largest, rtol=1e-4)


def test_spectral_vector_updates_only_in_training():
  layer = biggan_models.SNDense(5, 3, nnx.Rngs(0))
  # The orthogonal initial kernel has equal singular values, so every vector is a fixed point.
  layer.weight.kernel[...] = jax.random.normal(jax.random.key(1), (5, 3))
  before = np.asarray(layer.weight.sn_u[...])
  layer(jnp.ones((2, 5)), update_sn=False)
  np.testing.assert_array_equal(np.asarray(layer.weight.sn_u[...]), before)
  layer(jnp.ones((2, 5)), update_sn=True)
  assert not np.allclose(np.asarray(layer.weight.sn_u[...]), before)


def test_normalized_kernel_has_unit_spectral_norm():
  layer = biggan_models.SNConv(4, 6, 3, nnx.Rngs(1))
  for _ in range(50):
    kernel = layer.weight.normalized_kernel(update_sn=True)
  matrix = np.asarray(kernel).reshape(-1, 6)
  np.testing.assert_allclose(np.linalg.svd(matrix, compute_uv=False)[0], 1.0, rtol=1e-3)


def test_self_attention_keeps_shape():
  attention = biggan_models.SelfAttention(16, nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16))
  y = attention(x, update_sn=True)
  assert y.shape == x.shape
  # gamma starts at 0, so the block starts as the identity.
  np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
  attention.gamma[...] = jnp.ones(())
  assert not np.allclose(np.asarray(attention(x, update_sn=False)), np.asarray(x))


def test_attention_returns_value_of_matching_key():
  num_keys, dim = 6, 4
  keys = 10.0 * jnp.eye(num_keys, dim)  # keys 4 and 5 are 0
  values = jnp.arange(num_keys * 3, dtype=jnp.float32).reshape(1, num_keys, 3)
  # Query n points at key n for n < 4; the last query matches no key and averages all values.
  queries = jnp.concatenate([keys[:4], jnp.zeros((1, dim))])[None]
  out = biggan_models.dot_product_attention(queries, keys[None], values)
  np.testing.assert_allclose(np.asarray(out[0, :4]), np.asarray(values[0, :4]), atol=1e-3)
  np.testing.assert_allclose(np.asarray(out[0, 4]), np.asarray(values[0].mean(0)), atol=1e-5)


# Losses, regulariser, EMA, truncation.


def test_hinge_losses():
  real = jnp.array([2.0, 0.5, -1.0])
  fake = jnp.array([-2.0, 0.0])
  # relu(1 - real) = [0, 0.5, 2] -> mean 2.5 / 3; relu(1 + fake) = [0, 1] -> mean 0.5.
  np.testing.assert_allclose(
      float(losses.hinge_discriminator_loss(real, fake)), 2.5 / 3 + 0.5, rtol=1e-6)
  np.testing.assert_allclose(float(losses.hinge_generator_loss(fake)), 1.0, rtol=1e-6)


def test_orthogonal_regularization_matches_hand_computation():
  kernel = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, -1.0]], np.float32)  # [fan_in 3, out 2]
  conv = np.arange(2 * 2 * 1 * 3, dtype=np.float32).reshape(2, 2, 1, 3) / 10
  params = nnx.State({
      "dense": {"kernel": nnx.Param(jnp.asarray(kernel)), "bias": nnx.Param(jnp.ones(2))},
      "conv": {"kernel": nnx.Param(jnp.asarray(conv))},
      "embedding": nnx.Param(jnp.ones((3, 2))),
  })
  # Dense: columns (1, 0, 1) and (2, 1, -1) have inner product 1, counted twice: 2.
  expected = 2 * 1.0**2
  conv_matrix = conv.reshape(4, 3)
  gram = conv_matrix.T @ conv_matrix
  for i in range(3):
    for j in range(3):
      if i != j:
        expected += gram[i, j] ** 2
  np.testing.assert_allclose(
      float(biggan_family.orthogonal_regularization(params)), expected, rtol=1e-5)


def test_ema_copies_before_start_then_averages():
  ema, params = {"w": jnp.array(0.0)}, {"w": jnp.array(10.0)}
  copied = biggan_family.ema_update(ema, params, jnp.array(2), jnp.float32(0.9), start_step=3)
  assert float(copied["w"]) == 10.0
  averaged = biggan_family.ema_update(ema, params, jnp.array(3), jnp.float32(0.9), start_step=3)
  np.testing.assert_allclose(float(averaged["w"]), 1.0, rtol=1e-6)


def test_truncation_keeps_every_value_inside():
  for threshold in (0.5, 1.0, 2.0):
    z = biggan_family.truncated_normal(jax.random.key(3), (64, 32), threshold)
    assert float(jnp.max(jnp.abs(z))) <= threshold
    assert float(jnp.std(z)) > 0.3 * threshold
  plain = biggan_family.truncated_normal(jax.random.key(3), (64, 32), 0.0)
  np.testing.assert_array_equal(plain, jax.random.normal(jax.random.key(3), (64, 32)))


# DiffAugment.


def test_diffaugment_keeps_shape_and_range():
  x = jax.random.uniform(jax.random.key(0), (6, 16, 16, 3), minval=-1.0, maxval=1.0)
  ops = diffaugment.parse_policy("color,translation,cutout")
  y = diffaugment.augment(x, jax.random.key(1), ops)
  assert y.shape == x.shape
  assert float(y.min()) >= -1.0
  assert float(y.max()) <= 1.0
  assert not np.allclose(np.asarray(y), np.asarray(x))


def test_diffaugment_without_ops_is_identity():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  y = diffaugment.augment(x, jax.random.key(1), diffaugment.parse_policy(""))
  np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


@pytest.mark.parametrize("op", diffaugment.OPS)
def test_diffaugment_op_passes_gradient(op):
  x = jax.random.uniform(jax.random.key(0), (4, 8, 8, 3), minval=-0.5, maxval=0.5)
  grads = jax.grad(lambda x: diffaugment.augment(x, jax.random.key(2), (op,)).sum())(x)
  assert float(jnp.abs(grads).sum()) > 0


def test_diffaugment_rejects_unknown_op():
  with pytest.raises(ValueError, match="flip"):
    diffaugment.parse_policy("color,flip")


# Conditional networks.


def test_conditional_generator_uses_class():
  generator, discriminator = biggan_models.build(tiny_arch(), jax.random.key(0))
  z = jnp.tile(jax.random.normal(jax.random.key(1), (1, 6)), (3, 1))
  images = generator(z, jnp.array([0, 1, 2]), train=True)
  assert images.shape == (3, 16, 16, 3)
  assert not np.allclose(np.asarray(images[0]), np.asarray(images[1]), atol=1e-4)
  same = generator(z, jnp.array([2, 2, 2]), train=False)
  np.testing.assert_allclose(np.asarray(same[0]), np.asarray(same[1]), atol=1e-6)

  logits = discriminator(images, jnp.array([0, 1, 2]), update_sn=True)
  other = discriminator(images, jnp.array([1, 2, 0]), update_sn=False)
  assert logits.shape == (3,)
  assert not np.allclose(np.asarray(logits), np.asarray(other))


def test_conditional_batchnorm_gain_depends_on_condition():
  norm = biggan_models.ConditionalBatchNorm(4, 2, nnx.Rngs(0), epsilon=1e-5)
  x = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
  out_a = norm(x, jnp.array([[1.0, 0.0], [1.0, 0.0]]), train=True)
  out_b = norm(x, jnp.array([[1.0, 0.0], [0.0, 1.0]]), train=True)
  np.testing.assert_allclose(np.asarray(out_a[0]), np.asarray(out_b[0]), atol=1e-6)
  assert not np.allclose(np.asarray(out_a[1]), np.asarray(out_b[1]))


# Data.


def test_labels_follow_images_through_pipeline_shards():
  num_images, classes = 24, 3
  # Image i is filled with the value i, so a batch's pixels name its images.
  images = np.repeat(np.arange(num_images, dtype=np.uint8), 4 * 4 * 3).reshape(-1, 4, 4, 3)
  labels = np.arange(num_images) % classes
  source = source_lib.from_array("test", images, tuple(str(i) for i in range(num_images)))
  order = pipeline.epoch_order(seed=5, epoch=1, num_images=num_images).reshape(3, 8)

  for process in range(2):
    dataset = pipeline.make_epoch_dataset(
        source, seed=5, epoch=1, global_batch_size=8, start_batch=0,
        sharding=pipeline.Sharding(process, 2), labels=labels)
    batches = list(pipeline.iterate_epoch(dataset))
    assert len(batches) == 3
    for batch, expected in zip(batches, order):
      ids = np.rint((batch["image"][:, 0, 0, 0] + 1.0) * 127.5).astype(int)
      np.testing.assert_array_equal(ids, expected[process * 4:(process + 1) * 4])
      np.testing.assert_array_equal(batch["label"], labels[ids])
      assert batch["label"].dtype == np.int32


def test_class_folder_source_labels(tmp_path):
  write_class_folders(tmp_path, per_class=2)
  (tmp_path / "kiwi" / "broken.png").write_bytes(b"not a png")
  source = labeled.make_source(tmp_path, 8, min_images=4, num_threads=1)
  assert source.class_names == ("apple", "kiwi", "plum")
  assert source.num_images == 6
  np.testing.assert_array_equal(source.labels, [0, 0, 1, 1, 2, 2])
  kiwi = source.images.read(np.array([2]))[0].astype(int)
  assert kiwi[..., 1].mean() > kiwi[..., 0].mean()


def test_class_folder_errors(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    labeled.make_source(tmp_path / "missing", 8)
  with pytest.raises(DataError, match="No class subfolders"):
    labeled.make_source(tmp_path, 8)
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no readable image"):
    labeled.make_source(tmp_path, 8)


# Config validation.


@pytest.mark.parametrize("key, value, match", [
    ("data.image_size", 48, "power of 2"),
    ("model.g_multipliers", (1, 1, 1), "must be 2 positive integers"),
    ("model.attention_resolution", 12, "attention_resolution"),
    ("loss.d_steps", 3, "multiple of loss.d_steps"),
    ("loss.augment", "color,blur", "blur"),
    ("sample.weights", "best", "'ema', 'raw'"),
    ("data.class_names", "a,b", "lists 2 classes"),
    ("data.source", "generated", "conditional model"),
])
def test_validate_rejects_bad_values(tmp_path, key, value, match):
  config = tiny_config(tmp_path)
  section, name = key.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=match):
    biggan_family.FAMILY.validate(config)


def test_experiment_configs_validate():
  for name in ("biggan_lite_64", "biggan_lite_128", "biggan_lite_chars32"):
    from jaxgan import config_lib  # pylint: disable=g-import-not-at-top

    config = config_lib.load_config_file(REPO / "configs" / f"{name}.py")
    config.data.dir = "/data"
    config_lib.validate_common(config)
    families.get(config.model.family).validate(config)


def _primitive_names(jaxpr) -> set[str]:
  """Returns the names of the primitives in `jaxpr` and in every jaxpr nested in its equations."""
  names = set()
  for equation in jaxpr.eqns:
    names.add(equation.primitive.name)
    for param in equation.params.values():
      for value in param if isinstance(param, (tuple, list)) else (param,):
        inner = getattr(value, "jaxpr", value)
        if hasattr(inner, "eqns"):
          names |= _primitive_names(inner)
  return names


def test_train_step_has_no_loop(tmp_path):
  # XLA:CPU runs the convolution gradients inside a while loop in a slow generic kernel, so the
  # D updates must be unrolled, not a lax.scan or a fori_loop.
  config = tiny_config(tmp_path)
  family = families.get("biggan")
  state = family.init_state(config, steps_per_epoch=2)
  batch = {"image": jnp.zeros((8, 16, 16, 3)), "label": jnp.zeros((8,), jnp.int32),
           **family.step_inputs(config)}
  step = family.make_train_step(config, steps_per_epoch=2)
  names = _primitive_names(jax.make_jaxpr(step)(state, batch, jax.random.key(0)).jaxpr)
  assert "conv_general_dilated" in names
  assert "scan" not in names
  assert "while" not in names


def test_chars32_tiny_preset_uses_generated_faces():
  from jaxgan import config_lib  # pylint: disable=g-import-not-at-top

  config = config_lib.load_config_file(REPO / "configs" / "biggan_lite_chars32.py", "tiny")
  config_lib.validate_common(config)
  biggan_family.FAMILY.validate(config)
  assert config.data.source == "generated"
  assert config.model.num_classes == 0
  assert config.data.image_size == 16
  with pytest.raises(ValueError, match="unknown preset 'huge'"):
    config_lib.load_config_file(REPO / "configs" / "biggan_lite_chars32.py", "huge")


def test_class_count_mismatch_is_one_line_error(tmp_path):
  data = tmp_path / "data"
  write_class_folders(data, per_class=1)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  result = subprocess.run(
      [sys.executable, "-m", "jaxgan.main", "--config", "configs/biggan_lite_chars32.py",
       "--workdir", str(tmp_path / "run"), f"--config.data.dir={data}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith("Error: Invalid config value model.num_classes=10: ")
  assert "has 3 class folders (apple, kiwi, plum)" in lines[0]
  assert "--config.model.num_classes=3" in lines[0]
  assert not (tmp_path / "run").exists()


# Training end to end.


def _restore(config, workdir):
  family = families.get("biggan")
  checkpointer = checkpoint.Checkpointer(workdir, keep=10)
  state, meta = checkpointer.restore(checkpointer.latest_step(), family.init_state(config, 2))
  checkpointer.close()
  return jax.device_get(state), meta


def test_conditional_run_resumes_exactly(tmp_path):
  data = tmp_path / "data"
  write_class_folders(data)
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  train.train_and_evaluate(tiny_config(data), str(straight))

  # The interrupted run: one epoch through the command line, then a resume to two.
  config_file = tmp_path / "tiny_biggan.py"
  config_file.write_text(
      "import sys\n"
      f"sys.path.insert(0, {str(REPO / 'tests')!r})\n"
      "import test_biggan\n"
      "from pathlib import Path\n"
      f"def get_config():\n  return test_biggan.tiny_config(Path({str(data)!r}), num_epochs=1)\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  result = subprocess.run(
      [sys.executable, "-m", "jaxgan.main", "--config", str(config_file), "--workdir",
       str(resumed)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  train.train_and_evaluate(tiny_config(data), str(resumed))

  config = tiny_config(data)
  state_a, meta_a = _restore(config, str(straight))
  state_b, meta_b = _restore(config, str(resumed))
  leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
  assert len(leaves_a) == len(leaves_b)
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(a, b)
  assert meta_a.history == meta_b.history
  assert int(state_a.step) == 4

  # The EMA and the power-iteration vectors are part of the saved state and have moved.
  initial = biggan_family.FAMILY.init_state(config, 2)
  assert not np.allclose(jax.tree.leaves(state_a.ema_params)[0],
                         jax.tree.leaves(initial.ema_params)[0])
  # D has no BatchNorm, so its statistics are its power-iteration vectors. A vector of length
  # 1 (the output layer's) is +-1 and cannot move.
  sn_vectors = [v for v in jax.tree.leaves(state_a.d_stats) if v.size > 1]
  initial_vectors = [v for v in jax.tree.leaves(initial.d_stats) if v.size > 1]
  assert len(sn_vectors) == len(initial_vectors) > 5
  assert not np.allclose(sn_vectors[0], initial_vectors[0])

  # One grid row per class, and the saved config and grid record the class names and weights.
  saved = json.loads((straight / "config.json").read_text())
  assert saved["data"]["class_names"] == "apple,kiwi,plum"
  info = json.loads((straight / "samples" / "epoch_0002.json").read_text())
  assert info["weights"] == "ema"
  assert info["rows"] == ["apple", "kiwi", "plum"]
  grid = np.asarray(Image.open(straight / "samples" / "epoch_0002.png"))
  assert grid.shape[0] > grid.shape[1]  # 3 rows of 16 px over 2 columns
  assert (straight / "samples" / "epoch_0002.png").read_bytes() == (
      resumed / "samples" / "epoch_0002.png").read_bytes()

  # The grid of jaxgan.sample --grid comes from the newest checkpoint and records the weights.
  run = runs.with_sampling_options(runs.load_run(str(straight)), weights="raw", truncation=0.5)
  run = sample_grid.with_grid_columns(run, 3)
  record = sample_grid.write(run, str(tmp_path / "raw.png"), seed=run.config.seed)
  assert record["weights"] == "raw"
  assert record["step"] == 4
  assert len(record["diversity_per_row"]) == 3
  assert json.loads((tmp_path / "raw.json").read_text())["truncation"] == 0.5
  assert np.asarray(Image.open(tmp_path / "raw.png")).shape[:2] == (3 * 16 + 4 * 2, 3 * 16 + 4 * 2)


def test_conditional_run_monitors_collapse(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  data = tmp_path / "data"
  write_class_folders(data)
  (data / "plum" / "0.png").rename(data / "plum" / "0.txt")  # classes of unequal size
  workdir = tmp_path / "run"
  train.train_and_evaluate(tiny_config(data, num_epochs=1), str(workdir))

  events = event_accumulator.EventAccumulator(str(workdir), size_guidance={"tensors": 0})
  events.Reload()
  ratios = events.Tensors("monitor/diversity_ratio")
  assert len(ratios) == 1
  ratio = _tensor_value(ratios[0])
  assert 0.0 < ratio < 100.0


def _tensor_value(event) -> float:
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top

  return float(tensor_util.make_ndarray(event.tensor_proto))


def test_fixed_latents_share_z_along_columns(tmp_path):
  config = tiny_config(tmp_path)
  config.data.class_names = "apple,kiwi,plum"
  family = biggan_family.FAMILY
  assert family.grid_shape(config) == (3, 2)
  latents = family.fixed_latents(config, 6)
  np.testing.assert_array_equal(latents["label"], [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(latents["z"][0], latents["z"][2])
  assert not np.allclose(latents["z"][0], latents["z"][1])
  assert bool(latents["use_ema"])

  state = family.init_state(config, 2)
  state = state.replace(ema_params=jax.tree.map(jnp.zeros_like, state.ema_params))
  ema_images = family.generate(state, latents)
  raw_images = family.generate(state, {**latents, "use_ema": jnp.asarray(False)})
  assert ema_images.shape == (6, 16, 16, 3)
  assert not np.allclose(np.asarray(ema_images), np.asarray(raw_images))
