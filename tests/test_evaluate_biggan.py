"""Tests of evaluating and sampling BigGAN-lite runs: EMA and raw weights, truncation, per-class
metrics, sample files and grids."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import checkpoint
from jaxgan.errors import DataError
from jaxgan.evaluation import evaluator
from jaxgan.evaluation import interpolation
from jaxgan.evaluation import runs
from jaxgan.families import biggan as biggan_family
from tests.test_biggan import tiny_config
from tests.test_biggan import write_class_folders

REPO = Path(__file__).resolve().parents[1]
SIMPSONS_CHARACTERS = Path("/work/shared/data/simpsons_characters/test")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
  """A conditional run on 3 classes with one checkpoint at step 4, whose EMA weights are half
  the raw ones. It is written without training, which takes minutes to compile on CPU."""
  root = tmp_path_factory.mktemp("biggan")
  write_class_folders(root / "data")
  config = tiny_config(root / "data")
  config.data.class_names = "apple,kiwi,plum"
  biggan_family.FAMILY.validate(config)
  state = biggan_family.FAMILY.init_state(config, steps_per_epoch=2)
  state = state.replace(ema_params=jax.tree.map(lambda w: w * 0.5, state.g_params))

  workdir = root / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text(config.to_json())
  meta = checkpoint.Meta(epoch=2, batch_in_epoch=0, train_key=[0, 0], config=config.to_dict(),
                         history={}, wall_times=[])
  checkpointer = checkpoint.Checkpointer(workdir, keep=1)
  checkpointer.save(4, state, meta)
  checkpointer.close()
  return workdir


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600, check=False)


def run_evaluate(*args: str) -> subprocess.CompletedProcess:
  return run_module("jaxgan.evaluate", *args)


def test_ema_and_raw_results_differ(conditional_run, tmp_path):
  out = tmp_path / "eval"
  for weights in ("ema", "raw"):
    result = run_evaluate(f"--workdir={conditional_run}", f"--weights={weights}",
                          "--metrics=swd,diversity", "--num=12", "--per_class",
                          f"--out={out}")
    assert result.returncode == 0, result.stderr

  ema = json.loads((out / "swd_step4_ema_trunc1.json").read_text())
  raw = json.loads((out / "swd_step4_raw_trunc1.json").read_text())
  assert ema["settings"]["weights"] == "ema"
  assert ema["settings"]["ema"] is True
  assert raw["settings"]["weights"] == "raw"
  assert raw["settings"]["ema"] is False
  assert ema["settings"]["truncation"] == 1.0
  assert ema["value"] != raw["value"]

  # One value per class, each computed on that class's fakes (12 fakes over 3 classes).
  for metric in ("swd", "diversity"):
    per_class = json.loads((out / f"{metric}_step4_ema_trunc1.json").read_text())["per_class"]
    assert [entry["class"] for entry in per_class] == ["apple", "kiwi", "plum"]
    assert [entry["num_fake"] for entry in per_class] == [4, 4, 4]
    assert all(np.isfinite(entry["value"]) for entry in per_class)
  swd_values = [entry["value"] for entry in ema["per_class"]]
  assert len(set(swd_values)) == 3

  pair = f"{out / 'swd_step4_ema_trunc1.json'},{out / 'swd_step4_raw_trunc1.json'}"
  mixed = run_evaluate(f"--compare={pair}")
  assert mixed.returncode == 2
  assert "ema: True vs False" in mixed.stderr
  assert "Traceback" not in mixed.stderr


def test_truncation_on_dcgan_run_rejected(tmp_path):
  sys.path.insert(0, str(REPO))
  from configs import default as default_config  # pylint: disable=g-import-not-at-top

  # The options are checked against config.json before any checkpoint is read.
  (tmp_path / "config.json").write_text(default_config.get_config("tiny").to_json())
  truncation = run_evaluate(f"--workdir={tmp_path}", "--truncation=0.5")
  assert truncation.returncode == 2
  assert "dcgan family has no truncation" in truncation.stderr
  assert "Traceback" not in truncation.stderr
  assert truncation.stderr.count("\n") == 1

  weights = run_evaluate(f"--workdir={tmp_path}", "--weights=ema")
  assert weights.returncode == 2
  assert "keeps no moving average (EMA)" in weights.stderr


def test_sampler_slices_latent_dict():
  class AddOffset:
    """A stand-in family whose image is z plus 1 when use_ema is set."""

    @staticmethod
    def generate(state, latents):
      del state
      return latents["z"] + jnp.where(latents["use_ema"], 1.0, 0.0)

  z = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1) * np.ones((1, 2, 2, 3), np.float32)
  latents = {"z": z, "label": np.arange(5), "use_ema": np.asarray(True)}
  images = runs.Sampler(AddOffset(), None, batch_size=2)(latents)
  assert images.shape == (5, 2, 2, 3)
  np.testing.assert_array_equal(images[:, 0, 0, 0], [1, 2, 3, 4, 5])


def test_sample_cli_writes_pngs_and_labels(conditional_run, tmp_path):
  pngs = run_module("jaxgan.sample", f"--workdir={conditional_run}", "--num=4", "--weights=raw",
                    "--truncation=0.5", f"--out={tmp_path / 'png'}")
  assert pngs.returncode == 0, pngs.stderr[-3000:]
  assert sorted(path.name for path in (tmp_path / "png").glob("*.png")) == [
      f"sample_0000{index}.png" for index in range(4)]
  settings = json.loads((tmp_path / "png" / "sample_settings.json").read_text())
  assert settings["weights"] == "raw"
  assert settings["ema"] is False
  assert settings["truncation"] == 0.5
  assert settings["classes"] == ["apple", "kiwi", "plum"]
  assert settings["labels"] == [0, 1, 2, 0]

  npz = run_module("jaxgan.sample", f"--workdir={conditional_run}", "--num=5", "--format=npz",
                   f"--out={tmp_path / 'npz'}")
  assert npz.returncode == 0, npz.stderr[-3000:]
  with np.load(tmp_path / "npz" / "samples.npz") as samples:
    assert samples["images"].shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(samples["labels"], [0, 1, 2, 0, 1])
    assert samples["latents"].shape == (5, 6)
    assert samples["class_names"].tolist() == ["apple", "kiwi", "plum"]
  settings = json.loads((tmp_path / "npz" / "sample_settings.json").read_text())
  assert settings["weights"] == "ema"
  assert settings["truncation"] == 1.0


def test_sample_cli_grid_has_row_per_class(conditional_run, tmp_path):
  grid_path = tmp_path / "grid" / "raw.png"
  result = run_module("jaxgan.sample", f"--workdir={conditional_run}", "--weights=raw",
                      "--truncation=0.5", "--columns=3", f"--grid={grid_path}")
  assert result.returncode == 0, result.stderr[-3000:]

  # 3 rows (classes) by 3 columns of 16 px images with 2 px padding around and between them.
  assert np.asarray(Image.open(grid_path)).shape[:2] == (3 * 16 + 4 * 2, 3 * 16 + 4 * 2)
  record = json.loads((tmp_path / "grid" / "raw.json").read_text())
  assert record["step"] == 4
  assert record["epoch"] == 2
  assert record["weights"] == "raw"
  assert record["truncation"] == 0.5
  assert record["rows"] == ["apple", "kiwi", "plum"]
  assert (record["grid_rows"], record["grid_columns"]) == (3, 3)
  assert len(record["diversity_per_row"]) == 3
  assert all(value > 0 for value in record["diversity_per_row"])


def test_sample_cli_grid_rejects_out_flags(conditional_run, tmp_path):
  result = run_module("jaxgan.sample", f"--workdir={conditional_run}", "--num=3",
                      f"--grid={tmp_path / 'grid.png'}")
  assert result.returncode == 2
  assert "--num does not apply; remove it" in result.stderr
  assert result.stderr.count("\n") == 1


def test_interpolation_keeps_class_fixed():
  starts = {"z": np.zeros((2, 3), np.float32), "label": np.array([0, 2]),
            "use_ema": np.asarray(True)}
  ends = {"z": np.ones((2, 3), np.float32), "label": np.array([0, 2]),
          "use_ema": np.asarray(True)}
  path = interpolation.interpolate_image(starts, ends, 1, 5, "linear")
  np.testing.assert_allclose(path["z"][:, 0], [0.0, 0.25, 0.5, 0.75, 1.0])
  assert path["z"].dtype == np.float32
  np.testing.assert_array_equal(path["label"], [2] * 5)
  assert path["use_ema"].ndim == 0

  with pytest.raises(ValueError, match="image 1 has the non-interpolated latent 2"):
    interpolation.interpolate_image(starts, {**ends, "label": np.array([0, 1])}, 1, 5, "linear")


def test_evaluation_latents_balance_classes(tmp_path):
  config = tiny_config(tmp_path)
  latents = biggan_family.FAMILY.evaluation_latents(config, 7)
  np.testing.assert_array_equal(latents["label"], [0, 1, 2, 0, 1, 2, 0])
  assert latents["z"].shape == (7, config.model.latent_dim)
  assert latents["use_ema"].ndim == 0

  config.model.num_classes = 0
  unconditional = biggan_family.FAMILY.evaluation_latents(config, 7)
  assert len(np.unique(np.asarray(unconditional["z"]), axis=0)) == 7


def test_real_class_folders_resized(tmp_path):
  config = tiny_config(tmp_path / "unused")
  config.data.class_names = "apple,kiwi,plum"
  folder = tmp_path / "real"
  for label, name in enumerate(("apple", "kiwi", "plum")):
    (folder / name).mkdir(parents=True)
    for index in range(2 + label):
      pixels = np.full((28, 28, 3), 60 * label, np.uint8)
      Image.fromarray(pixels).save(folder / name / f"{index}.jpg")

  reals = evaluator.load_real_images(evaluator.folder_config(config, str(folder)))
  assert reals.images.shape == (9, 16, 16, 3)
  np.testing.assert_array_equal(reals.labels, [0, 0, 1, 1, 1, 2, 2, 2, 2])
  assert reals.class_names == ("apple", "kiwi", "plum")

  (folder / "pear").mkdir()
  Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(folder / "pear" / "0.jpg")
  with pytest.raises(DataError, match="trained on apple,kiwi,plum"):
    evaluator.load_real_images(evaluator.folder_config(config, str(folder)))


@pytest.mark.skipif(not SIMPSONS_CHARACTERS.is_dir(), reason="Simpsons characters not present")
def test_simpsons_characters_read_at_32(tmp_path):
  config = tiny_config(tmp_path)
  config.data.image_size = 32
  config.data.class_names = ""
  config.model.num_classes = 10
  reals = evaluator.load_real_images(
      evaluator.folder_config(config, str(SIMPSONS_CHARACTERS)), max_images=50)
  assert reals.images.shape == (50, 32, 32, 3)
  assert len(reals.class_names) == 10
  assert reals.labels.max() < 10


def test_cli_flag_errors_name_flag(conditional_run, tmp_path):
  (tmp_path / "afile").write_text("")
  (tmp_path / "empty").mkdir()
  cases = [
      (("jaxgan.sample", "--num=4", f"--out={tmp_path / 'afile'}"),
       f"--out {tmp_path / 'afile'} is a file; pass a folder"),
      (("jaxgan.sample", "--num=4", f"--out={tmp_path / 'afile' / 'sub'}"),
       f"because {tmp_path / 'afile'} is a file"),
      (("jaxgan.sample", f"--grid={tmp_path / 'afile' / 'grid.png'}"),
       f"--grid folder {tmp_path / 'afile'} is a file"),
      (("jaxgan.evaluate", "--num=4", f"--out={tmp_path / 'afile'}"),
       f"--out {tmp_path / 'afile'} is a file"),
      (("jaxgan.sample", "--num=4", f"--out={tmp_path / 'out'}", "--truncation=-1"),
       "--truncation must be >= 0 (0 = off), got -1.0."),
      (("jaxgan.evaluate", "--num=4", f"--out={tmp_path / 'out'}", "--truncation=-1"),
       "--truncation must be >= 0 (0 = off), got -1.0."),
      (("jaxgan.sample", "--num=4", f"--out={tmp_path / 'out'}", "--truncation=0.01"),
       "Invalid --truncation=0.01: it must be 0 (off) or at least 0.05"),
      (("jaxgan.evaluate", "--metrics=swd", "--class_holdout=0.2"),
       "--class_holdout is used only by the class_accuracy metric"),
      (("jaxgan.sample", "--num=3", "--format=npz", f"--grid={tmp_path / 'grid.png'}"),
       "--num and --format do not apply; remove them"),
      (("jaxgan.evaluate", "--metrics=class_accuracy", "--num=6",
        f"--class_test={tmp_path / 'empty'}", f"--out={tmp_path / 'out'}"),
       "pass another --class_test."),
      (("jaxgan.evaluate", "--metrics=class_accuracy", "--num=6", f"--real={tmp_path / 'empty'}",
        f"--out={tmp_path / 'out'}"),
       "pass another --real."),
  ]
  for (module, *args), message in cases:
    result = run_module(module, f"--workdir={conditional_run}", *args)
    assert result.returncode == 2, (args, result.stderr[-3000:])
    assert message in result.stderr, (args, result.stderr[-3000:])
    assert "--config." not in result.stderr, args
    assert "Traceback" not in result.stderr, args
    assert result.stderr.strip().splitlines()[-1].startswith("Error: "), args
