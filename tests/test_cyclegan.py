"""Tests of the CycleGAN family: networks, losses, image pool, two-domain data, training."""

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from jaxgan import checkpoint
from jaxgan import config_lib
from jaxgan import families
from jaxgan import image_pool
from jaxgan import losses
from jaxgan import optim
from jaxgan import train
from jaxgan.data import unpaired
from jaxgan.errors import ConfigError
from jaxgan.families import cyclegan as cyclegan_family
from jaxgan.models import cyclegan as models

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from configs import cyclegan_face2simpsons  # pylint: disable=g-import-not-at-top,wrong-import-position


def tiny_config():
  return cyclegan_face2simpsons.get_config("tiny")


# Networks.


def test_generator_keeps_image_shape():
  generator = models.ResnetGenerator(4, 2, rngs=nnx.Rngs(params=0))
  images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3), minval=-1, maxval=1)
  output = generator(images)
  assert output.shape == (2, 32, 32, 3)
  assert float(jnp.abs(output).max()) < 1.0
  assert len(generator.blocks) == 2


def test_generator_rejects_size_not_multiple_of_4():
  generator = models.ResnetGenerator(4, 1, rngs=nnx.Rngs(params=0))
  with pytest.raises(ValueError, match="multiples of 4"):
    generator(jnp.zeros((1, 30, 30, 3)))


@pytest.mark.parametrize("size, patches", [(32, 2), (64, 6)])
def test_patchgan_output_shape(size, patches):
  discriminator = models.PatchDiscriminator(4, rngs=nnx.Rngs(params=0))
  assert discriminator(jnp.zeros((3, size, size, 3))).shape == (3, patches, patches, 1)


def test_patchgan_receptive_field_is_70():
  discriminator = models.PatchDiscriminator(4, rngs=nnx.Rngs(params=0))
  layout = [(conv.kernel.shape[0], conv.stride) for conv in [*discriminator.convs,
                                                              discriminator.head]]
  assert tuple(layout) == models.PatchDiscriminator.LAYOUT
  assert models.receptive_field(models.PatchDiscriminator.LAYOUT) == 70


def test_reflect_pad_by_hand():
  x = jnp.arange(1.0, 10.0).reshape(1, 3, 3, 1)
  expected = np.array([
      [5, 4, 5, 6, 5],
      [2, 1, 2, 3, 2],
      [5, 4, 5, 6, 5],
      [8, 7, 8, 9, 8],
      [5, 4, 5, 6, 5],
  ], np.float32)
  np.testing.assert_array_equal(models.reflect_pad(x, 1)[0, :, :, 0], expected)


def test_instance_norm_by_hand():
  # Image 0, channel 0 is [[1, 2], [3, 4]]: mean 2.5, biased variance 1.25. Channel 1 is
  # constant 7, which normalizes to 0. Image 1 is image 0 times 10 and normalizes almost alike.
  image = np.array([[[1, 7], [2, 7]], [[3, 7], [4, 7]]], np.float32)
  x = jnp.asarray(np.stack([image, 10 * image]))
  y = np.asarray(models.instance_norm(x))

  scale = 1.0 / math.sqrt(1.25 + 1e-5)
  expected = np.array([[-1.5, -0.5], [0.5, 1.5]]) * scale
  np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-6)
  np.testing.assert_allclose(y[0, :, :, 1], 0.0, atol=1e-6)
  scale10 = 1.0 / math.sqrt(125.0 + 1e-5)
  np.testing.assert_allclose(y[1, :, :, 0], expected / scale * 10 * scale10, rtol=1e-6)


# Losses.


def test_lsgan_losses_by_hand():
  real, fake = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
  # D: 0.5 * (mean((1-1)^2, (0-1)^2) + mean(0^2, 1^2)) = 0.5 * (0.5 + 0.5).
  assert float(losses.adversarial_d_loss("lsgan", real, fake)) == pytest.approx(0.5)
  # G: mean((0-1)^2, (1-1)^2).
  assert float(losses.adversarial_g_loss("lsgan", fake)) == pytest.approx(0.5)


def test_non_saturating_losses_by_hand():
  zeros = jnp.zeros((4,))
  assert float(losses.adversarial_d_loss("non_saturating", zeros, zeros)) == pytest.approx(
      math.log(2.0), rel=1e-6)
  large = jnp.full((2,), 30.0)
  assert float(losses.adversarial_d_loss("non_saturating", large, -large)) < 1e-10
  assert float(losses.adversarial_g_loss("non_saturating", jnp.array([0.0]))) == pytest.approx(
      math.log(2.0), rel=1e-6)
  # softplus(-1) = log(1 + e^-1).
  assert float(losses.adversarial_g_loss("non_saturating", jnp.array([1.0]))) == pytest.approx(
      math.log1p(math.exp(-1.0)), rel=1e-6)


def test_hinge_losses_by_hand():
  real, fake = jnp.array([2.0, 0.0]), jnp.array([-2.0, 0.0])
  # D: 0.5 * (mean(relu(-1), relu(1)) + mean(relu(-1), relu(1))) = 0.5 * (0.5 + 0.5).
  assert float(losses.adversarial_d_loss("hinge", real, fake)) == pytest.approx(0.5)
  assert float(losses.adversarial_g_loss("hinge", jnp.array([1.0, 3.0]))) == pytest.approx(-2.0)


def test_unknown_adversarial_loss_raises():
  with pytest.raises(ValueError, match="unknown adversarial loss"):
    losses.adversarial_d_loss("wasserstein", jnp.zeros(1), jnp.zeros(1))
  with pytest.raises(ValueError, match="unknown adversarial loss"):
    losses.adversarial_g_loss("wasserstein", jnp.zeros(1))


def test_l1_by_hand():
  assert float(losses.l1(jnp.array([1.0, -1.0, 0.5]), jnp.array([0.0, 1.0, 0.5]))) == (
      pytest.approx(1.0))


# Image pool.


def constant_images(values):
  return jnp.asarray(values, jnp.float32)[:, None, None, None] * jnp.ones((1, 2, 2, 3))


def image_values(images):
  return [float(v) for v in np.asarray(images)[:, 0, 0, 0]]


def test_pool_fills_then_stays_at_capacity():
  pool = image_pool.create(3, (2, 2, 3))
  pool, outputs = image_pool.query(pool, constant_images([1, 2]), jax.random.key(0))
  assert int(pool.count) == 2
  assert image_values(outputs) == [1, 2]
  assert image_values(pool.images) == [1, 2, 0]

  pool, outputs = image_pool.query(pool, constant_images([3, 4, 5]), jax.random.key(1))
  assert int(pool.count) == 3
  # Image 3 fills the last slot and is returned; 4 and 5 meet a full pool.
  assert image_values(outputs)[0] == 3
  assert pool.images.shape == (3, 2, 2, 3)


def test_pool_full_conserves_images():
  pool = image_pool.create(4, (2, 2, 3))
  pool, _ = image_pool.query(pool, constant_images([1, 2, 3, 4]), jax.random.key(0))
  before = image_values(pool.images)
  new = [10, 11, 12, 13, 14, 15]
  pool, outputs = image_pool.query(pool, constant_images(new), jax.random.key(3))
  # Each new image is either returned, or stored while a stored image is returned.
  assert sorted(before + new) == sorted(image_values(pool.images) + image_values(outputs))
  for value, output in zip(new, image_values(outputs)):
    assert output == value or output in before + new


def test_pool_same_key_same_result():
  pool = image_pool.create(2, (2, 2, 3))
  pool, _ = image_pool.query(pool, constant_images([1, 2]), jax.random.key(0))
  first = image_pool.query(pool, constant_images([3, 4, 5]), jax.random.key(7))
  second = image_pool.query(pool, constant_images([3, 4, 5]), jax.random.key(7))
  np.testing.assert_array_equal(first[1], second[1])
  np.testing.assert_array_equal(first[0].images, second[0].images)


def test_pool_returns_stored_image_half_the_time():
  pool = image_pool.create(5, (2, 2, 3))
  pool, _ = image_pool.query(pool, constant_images([1, 2, 3, 4, 5]), jax.random.key(0))
  keys = jax.random.split(jax.random.key(42), 4000)
  query = jax.jit(jax.vmap(lambda key: image_pool.query(pool, constant_images([9]), key)))
  new_pools, outputs = query(keys)
  returned = np.asarray(outputs)[:, 0, 0, 0, 0]
  swapped = returned != 9
  # Binomial(4000, 0.5) has std 0.008 in the fraction; the bound is 5 std.
  assert abs(swapped.mean() - 0.5) < 0.04
  # A swap returns each of the five stored images about equally often.
  counts = np.bincount(returned[swapped].astype(int), minlength=6)[1:]
  assert counts.min() > 0.15 * swapped.sum()
  # Where no swap happened, the pool is unchanged.
  stored = np.asarray(new_pools.images)[:, :, 0, 0, 0]
  np.testing.assert_array_equal(stored[~swapped], np.tile([1, 2, 3, 4, 5], ((~swapped).sum(), 1)))
  assert np.all((stored[swapped] == 9).sum(axis=1) == 1)


def test_pool_capacity_zero_returns_input():
  pool = image_pool.create(0, (2, 2, 3))
  images = constant_images([1, 2])
  new_pool, outputs = image_pool.query(pool, images, jax.random.key(0))
  np.testing.assert_array_equal(outputs, images)
  assert new_pool.images.shape == (0, 2, 2, 3)


# Train step: cycle and identity terms.


@pytest.fixture(scope="module")
def tiny_step_result():
  config = tiny_config()
  family = families.get("cyclegan")
  state = family.init_state(config, steps_per_epoch=4)
  keys = jax.random.split(jax.random.key(5), 2)
  batch = {"image_a": jax.random.uniform(keys[0], (8, 32, 32, 3), minval=-1, maxval=1),
           "image_b": jax.random.uniform(keys[1], (8, 32, 32, 3), minval=-1, maxval=1)}
  step = jax.jit(family.make_train_step(config, steps_per_epoch=4))
  new_state, metrics = step(state, batch, jax.random.key(0))
  return config, state, batch, new_state, metrics


def test_step_cycle_and_identity_terms(tiny_step_result):
  config, state, batch, _, metrics = tiny_step_result
  run = lambda params, x: cyclegan_family.translate(state.generator_graphdef, params, x)
  a, b = batch["image_a"], batch["image_b"]
  expected = {
      "cycle_a_loss": losses.l1(run(state.f_params, run(state.g_params, a)), a),
      "cycle_b_loss": losses.l1(run(state.g_params, run(state.f_params, b)), b),
      "identity_a_loss": losses.l1(run(state.f_params, a), a),
      "identity_b_loss": losses.l1(run(state.g_params, b), b),
  }
  for name, value in expected.items():
    np.testing.assert_allclose(metrics[name], value, rtol=1e-5, err_msg=name)
  weight = config.loss.cycle_weight
  total = (metrics["adv_g_loss"] + metrics["adv_f_loss"]
           + weight * (metrics["cycle_a_loss"] + metrics["cycle_b_loss"])
           + weight * config.loss.identity_weight
           * (metrics["identity_a_loss"] + metrics["identity_b_loss"]))
  np.testing.assert_allclose(metrics["g_loss"], total, rtol=1e-5)


def test_cycle_and_identity_losses_zero_for_identity_maps(monkeypatch):
  config = tiny_config()
  family = families.get("cyclegan")
  state = family.init_state(config, steps_per_epoch=4)
  real_apply = cyclegan_family._apply  # pylint: disable=protected-access

  def generators_as_identity(graphdef, params, inputs):
    if graphdef is state.generator_graphdef:
      return inputs
    return real_apply(graphdef, params, inputs)

  monkeypatch.setattr(cyclegan_family, "_apply", generators_as_identity)
  keys = jax.random.split(jax.random.key(3), 2)
  batch = {"image_a": jax.random.uniform(keys[0], (8, 32, 32, 3), minval=-1, maxval=1),
           "image_b": jax.random.uniform(keys[1], (8, 32, 32, 3), minval=-1, maxval=1)}
  _, metrics = family.make_train_step(config, steps_per_epoch=4)(
      state, batch, jax.random.key(0))
  for name in ("cycle_a_loss", "cycle_b_loss", "identity_a_loss", "identity_b_loss"):
    assert float(metrics[name]) == 0.0, name


def test_learning_rate_decays_linearly_after_boundary():
  config = tiny_config()
  config.train.num_epochs = 4
  config.optim.decay_start_epoch = 2.0
  _, _, schedule_g, schedule_d = optim.make_gan_optimizers(config, 10)
  peak = config.optim.lr_g
  for schedule, rate in ((schedule_g, peak), (schedule_d, config.optim.lr_d)):
    assert float(schedule(0)) == pytest.approx(rate)
    assert float(schedule(19)) == pytest.approx(rate)
    assert float(schedule(20)) == pytest.approx(rate)
    assert float(schedule(30)) == pytest.approx(rate / 2, rel=1e-5)
    assert float(schedule(40)) == pytest.approx(0.0, abs=1e-12)


def test_step_updates_networks_and_pools(tiny_step_result):
  config, state, _, new_state, metrics = tiny_step_result
  assert int(new_state.step) == 1
  for name in ("g_params", "f_params", "d_a_params", "d_b_params"):
    old, new = jax.tree.leaves(getattr(state, name)), jax.tree.leaves(getattr(new_state, name))
    assert any(not np.array_equal(x, y) for x, y in zip(old, new)), name
  # The first 6 of the 8 fakes fill each pool.
  assert int(new_state.pool_a.count) == config.loss.pool_size
  assert int(new_state.pool_b.count) == config.loss.pool_size
  assert float(metrics["d_loss"]) == pytest.approx(
      float(metrics["d_a_loss"] + metrics["d_b_loss"]), rel=1e-6)
  assert float(metrics["g_change"]) > 0


def test_collapse_warnings_flag_and_log(caplog):
  config = tiny_config()
  means = {"g_change": 0.001, "g_batch_std": 0.5, "f_change": 0.3, "f_batch_std": 0.0001}
  with caplog.at_level(logging.WARNING):
    flags = cyclegan_family.collapse_warnings(config, means)
  assert flags == {"collapse_identity_g": 1.0, "collapse_constant_g": 0.0,
                   "collapse_identity_f": 0.0, "collapse_constant_f": 1.0}
  assert "collapsed to the identity" in caplog.text
  assert "collapsed to a constant" in caplog.text

  config.data.batch_size = 1
  assert cyclegan_family.collapse_warnings(config, means)["collapse_constant_f"] == 0.0


# Two-domain data.


def write_utkface_folder(folder: Path) -> None:
  folder.mkdir()
  rng = np.random.default_rng(0)
  names = ["26_1_2_20170101.jpg.chip.jpg", "17_0_0_20170102.jpg.chip.jpg",
           "40_1_0_20170103.jpg.chip.jpg", "18_0_1_20170104.jpg.chip.jpg",
           "5_0_0_20170105.jpg.chip.jpg", "unknown_face.jpg", "x_1_2.jpg",
           "70_1_3_20170106.jpg.chip.jpg"]
  for name in names:
    pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / name, format="JPEG")


def folder_config(tmp_path):
  config = tiny_config()
  write_utkface_folder(tmp_path / "faces")
  config.data.source = "folder"
  config.data.dir = str(tmp_path / "faces")
  config.data.min_age = 18
  config.data.batch_size = 2
  config.data_b.num_generated = 6
  return config


def test_age_filter_keeps_adults_and_counts_skips(tmp_path, caplog):
  config = folder_config(tmp_path)
  with caplog.at_level(logging.INFO):
    source = unpaired.make_source(config)
  assert sorted(source.a.ids) == ["18_0_1_20170104", "26_1_2_20170101", "40_1_0_20170103",
                                  "70_1_3_20170106"]
  assert "Skipped 2 of 8 files of domain A" in caplog.text
  assert "4 files with age >= 18, 2 younger" in caplog.text
  assert source.b.num_images == 6
  assert source.num_images == 6
  assert source.image_size == 32


def test_parse_utkface_age():
  assert unpaired.parse_utkface_age("26_1_2_2017.jpg.chip.jpg") == 26
  assert unpaired.parse_utkface_age("/x/100_0_0_1.jpg") == 100
  assert unpaired.parse_utkface_age("face.jpg") is None
  assert unpaired.parse_utkface_age("_1_2.jpg") is None


def test_max_images_takes_seeded_subset(tmp_path):
  config = folder_config(tmp_path)
  config.data.max_images = 3
  first = unpaired.make_source(config).a.ids
  second = unpaired.make_source(config).a.ids
  assert len(first) == 3
  assert first == second
  assert set(first) <= {"18_0_1_20170104", "26_1_2_20170101", "40_1_0_20170103",
                        "70_1_3_20170106"}


def test_epoch_covers_larger_domain_once(tmp_path):
  config = folder_config(tmp_path)
  source = unpaired.make_source(config)
  batches = list(unpaired.epoch_batches(source, seed=0, epoch=0, global_batch_size=2))
  assert len(batches) == 3
  for batch in batches:
    assert batch["image_a"].shape == (2, 32, 32, 3)
    assert batch["image_b"].shape == (2, 32, 32, 3)
    assert batch["image_a"].dtype == np.float32
    assert batch["image_a"].min() >= -1.0
    assert batch["image_a"].max() <= 1.0

  # B (6 images) is seen once; A (4 images) once and then 2 of them again.
  b_order = unpaired.domain_order(0, 0, "b", 6, 6)
  assert sorted(b_order) == list(range(6))
  a_order = unpaired.domain_order(0, 0, "a", 4, 6)
  assert sorted(a_order[:4]) == list(range(4))
  expected_b = source.b.read(b_order).astype(np.float32) / 127.5 - 1.0
  np.testing.assert_allclose(np.concatenate([b["image_b"] for b in batches]), expected_b,
                             atol=1e-6)


def test_domain_orders_depend_on_seed_epoch_domain():
  base = unpaired.domain_order(0, 0, "a", 50, 50)
  np.testing.assert_array_equal(base, unpaired.domain_order(0, 0, "a", 50, 50))
  assert not np.array_equal(base, unpaired.domain_order(0, 1, "a", 50, 50))
  assert not np.array_equal(base, unpaired.domain_order(0, 0, "b", 50, 50))
  assert not np.array_equal(base, unpaired.domain_order(1, 0, "a", 50, 50))


def test_resumed_epoch_skips_batches(tmp_path):
  config = folder_config(tmp_path)
  source = unpaired.make_source(config)
  full = list(unpaired.epoch_batches(source, seed=3, epoch=2, global_batch_size=2))
  tail = list(unpaired.epoch_batches(source, seed=3, epoch=2, global_batch_size=2,
                                     start_batch=1))
  assert len(tail) == 2
  for whole, rest in zip(full[1:], tail):
    np.testing.assert_array_equal(whole["image_a"], rest["image_a"])
    np.testing.assert_array_equal(whole["image_b"], rest["image_b"])


def test_generated_domain_b_differs_in_colour():
  source = unpaired.make_source(tiny_config())
  a, b = source.a.read(np.arange(4)), source.b.read(np.arange(4))
  assert a.shape == b.shape == (4, 32, 32, 3)
  assert not np.array_equal(a, b)
  # Yellow skin (red > blue) in A becomes blue-dominant in B.
  assert a[..., 0].mean() > a[..., 2].mean()
  assert b[..., 2].mean() > b[..., 0].mean()


def test_min_age_needs_folder_source():
  config = tiny_config()
  config.data_b.min_age = 18
  with pytest.raises(ConfigError, match="data_b.min_age"):
    families.get("cyclegan").validate(config)


def test_folder_domain_needs_dir():
  config = tiny_config()
  config.data_b.source = "folder"
  with pytest.raises(ConfigError, match="Missing config value data_b.dir"):
    families.get("cyclegan").validate(config)


@pytest.mark.parametrize("preset, size, blocks, identity", [
    ("", 128, 6, 0.5), ("64", 64, 4, 0.0), ("tiny", 32, 1, 0.5)])
def test_experiment_presets_validate(preset, size, blocks, identity, tmp_path):
  config = cyclegan_face2simpsons.get_config(preset)
  if config.data.source == "folder":
    config.data.dir = str(tmp_path)
    config.data_b.dir = str(tmp_path)
  config_lib.validate_common(config)
  families.get("cyclegan").validate(config)
  assert config.data.image_size == size
  assert config.model.num_blocks == blocks
  assert config.loss.identity_weight == identity
  assert config.loss.cycle_weight == 10.0
  assert config.loss.adversarial == "lsgan"


def test_experiment_config_needs_folders():
  config = cyclegan_face2simpsons.get_config()
  with pytest.raises(ConfigError, match="Missing config value data.dir"):
    config_lib.validate_common(config)


def test_resume_check_covers_domain_b():
  saved = tiny_config().to_dict()
  current = tiny_config()
  current.data_b.max_images = 10
  current.data.min_age = 18
  assert train.structural_differences(saved, current) == [
      "data.min_age: 0 -> 18", "data_b.max_images: 0 -> 10"]


# End to end.


def final_state(config, workdir):
  family = families.get("cyclegan")
  checkpointer = checkpoint.Checkpointer(workdir, keep=10)
  state, meta = checkpointer.restore(checkpointer.latest_step(), family.init_state(config, 4))
  checkpointer.close()
  return jax.tree.leaves(jax.device_get(state)), meta


@pytest.mark.slow
def test_main_run_and_resume_equality(tmp_path):
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  command = [sys.executable, "-m", "jaxgan.main", "--config",
             "configs/cyclegan_face2simpsons.py:tiny", "--workdir", str(straight)]
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]

  one_epoch = tiny_config()
  one_epoch.train.num_epochs = 1
  train.train_and_evaluate(one_epoch, str(resumed))
  train.train_and_evaluate(tiny_config(), str(resumed))

  straight_leaves, straight_meta = final_state(tiny_config(), str(straight))
  resumed_leaves, resumed_meta = final_state(tiny_config(), str(resumed))
  assert len(straight_leaves) == len(resumed_leaves)
  for a, b in zip(straight_leaves, resumed_leaves):
    np.testing.assert_array_equal(a, b)
  assert straight_meta.history == resumed_meta.history
  assert int(straight_leaves[0].size) > 0

  grid = straight / "samples" / "epoch_0002.png"
  assert grid.read_bytes() == (resumed / "samples" / "epoch_0002.png").read_bytes()
  # 6 rows and 3 columns of 32-pixel images with 2-pixel padding.
  assert Image.open(grid).size == (3 * 32 + 4 * 2, 6 * 32 + 7 * 2)

  history = straight_meta.history
  for name in ("adv_g_loss", "adv_f_loss", "cycle_a_loss", "cycle_b_loss", "identity_a_loss",
               "identity_b_loss", "d_a_loss", "d_b_loss", "g_change", "g_batch_std",
               "collapse_identity_g", "collapse_constant_f"):
    assert len(history[name]) == 2, name
  assert (straight / "plots" / "losses.png").is_file()
  summary = json.loads((straight / "summary.json").read_text())
  assert summary["epochs_done"] == 2

  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  events = event_accumulator.EventAccumulator(str(straight), size_guidance={"tensors": 0})
  events.Reload()
  tags = set(events.Tags()["tensors"])
  for name in ("cycle_a_loss", "identity_b_loss", "d_b_loss", "f_batch_std",
               "epoch/collapse_identity_g"):
    assert name in tags, name
