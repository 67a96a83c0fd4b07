"""GAN + SDPC fusions: frozen dictionaries, the L1 code penalty, and tiny training runs."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import checkpoint
from jaxgan import families
from jaxgan import train
from jaxgan.errors import ConfigError
from jaxgan.models import sdpc_gan

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from configs import default as default_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import sdpc_simpsons  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope="module")
def sdpc_workdir(tmp_path_factory):
  """A finished one-epoch SDPC run at 24x24 (tiny preset)."""
  workdir = tmp_path_factory.mktemp("sdpc_run")
  config = sdpc_simpsons.get_config("tiny")
  config.train.num_epochs = 1
  train.train_and_evaluate(config, str(workdir))
  return str(workdir)


def fusion_config(arch, sdpc_workdir):
  config = default_config.get_config("tiny")
  config.data.image_size = 24
  config.train.num_epochs = 1
  config.model.arch = arch
  config.model.sdpc_workdir = sdpc_workdir
  config.model.sdpc_unrolled_steps = 4
  return config


def test_l1_gradient_adds_penalty_gradient():
  codes = jnp.array([[0.0, 2.0], [1.0, 0.0]])
  gradient = jax.grad(lambda c: jnp.sum(sdpc_gan._with_l1_gradient(c, jnp.float32(0.5)) * 3.0))(
      codes)
  # 3 from the loss, plus weight * sign(code) / batch = 0.5 * 1 / 2 where a code is active.
  np.testing.assert_allclose(gradient, [[3.0, 3.25], [3.25, 3.0]])
  assert float(sdpc_gan._with_l1_gradient(codes, jnp.float32(0.5)).sum()) == 3.0


def test_pretrained_dictionaries_load(sdpc_workdir):
  pretrained = sdpc_gan.load_pretrained(sdpc_workdir, 24)
  assert [atoms.shape for atoms in pretrained.dictionaries] == [(6, 6, 3, 8), (5, 5, 8, 8)]
  assert pretrained.layers[-1].code_size == 6
  with pytest.raises(ConfigError, match="learned at 24x24"):
    sdpc_gan.load_pretrained(sdpc_workdir, 32)


def test_missing_sdpc_workdir_rejected(tmp_path):
  config = fusion_config("sdpc_generator", str(tmp_path / "nothing"))
  with pytest.raises(ConfigError, match="no SDPC run found"):
    families.get("dcgan").init_state(config, 1)
  config.model.sdpc_workdir = ""
  with pytest.raises(ConfigError, match="Missing config value model.sdpc_workdir"):
    families.get("dcgan").validate(config)


def test_sparse_code_generator_outputs_images_from_sparse_codes(sdpc_workdir):
  config = fusion_config("sdpc_generator", sdpc_workdir)
  generator, _ = sdpc_gan.build(config, jax.random.key(0))
  z = jax.random.normal(jax.random.key(1), (4, config.model.latent_dim))
  codes = generator.codes(z, train=False)
  assert codes.shape == (4, 6, 6, 8)
  assert float(jnp.min(codes)) >= 0.0
  assert generator(z, train=False).shape == (4, 24, 24, 3)


@pytest.mark.parametrize("arch", ["sdpc_generator", "sdpc_discriminator"])
def test_fusion_trains_with_frozen_dictionaries(arch, sdpc_workdir, tmp_path):
  config = fusion_config(arch, sdpc_workdir)
  meta = train.train_and_evaluate(config, str(tmp_path))
  for name in ("d_loss", "g_loss", "d_real", "d_fake"):
    assert np.isfinite(meta.history[name][-1]), name
  assert (tmp_path / "samples" / "epoch_0001.png").exists()

  family = families.get("dcgan")
  checkpointer = checkpoint.Checkpointer(str(tmp_path), keep=10)
  state, _ = checkpointer.restore(checkpointer.latest_step(), family.init_state(config, 1))
  checkpointer.close()
  stats = state.g_stats if arch == "sdpc_generator" else state.d_stats
  frozen = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(stats)
            if "dictionaries" in jax.tree_util.keystr(path)]
  pretrained = sdpc_gan.load_pretrained(sdpc_workdir, 24)
  assert len(frozen) == len(pretrained.dictionaries)
  for saved, original in zip(frozen, pretrained.dictionaries):
    np.testing.assert_array_equal(np.asarray(saved), original)
