"""End-to-end tests of evaluation: periodic evaluation in training, restoring, the CLIs."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxgan import cli
from jaxgan import train
from jaxgan.errors import ConfigError
from jaxgan.evaluation import evaluator
from jaxgan.evaluation import interpolation
from jaxgan.evaluation import runs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from configs import default as default_config  # pylint: disable=g-import-not-at-top,wrong-import-position


def tiny_config():
  config = default_config.get_config("tiny")
  config.eval.every_epochs = 1
  config.eval.num_images = 16
  config.eval.metrics = "swd,diversity"
  config.eval.best_metric = "swd"
  return config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A 2-epoch tiny run with evaluation after each epoch; checkpoints at steps 4 and 8."""
  workdir = tmp_path_factory.mktemp("run")
  train.train_and_evaluate(tiny_config(), str(workdir))
  return workdir


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  env.pop("JAXGAN_INCEPTION_WEIGHTS", None)
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600, check=False)


def test_periodic_evaluation_outputs(trained_run):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  summary = json.loads((trained_run / "summary.json").read_text())
  assert summary["eval"]["last"]["epoch"] == 2
  assert set(summary["eval"]["last"]) >= {"swd", "diversity", "step"}
  history = json.loads((trained_run / "eval" / "history.json").read_text())
  assert [entry["step"] for entry in history] == [4, 8]

  best = json.loads((trained_run / "eval" / "best.json").read_text())
  assert best["value"] == min(entry["swd"] for entry in history)
  assert runs.available_steps(str(trained_run), best=True) == [best["step"]]

  events = event_accumulator.EventAccumulator(str(trained_run), size_guidance={"tensors": 0})
  events.Reload()
  assert len(events.Tensors("eval/swd")) == 2


def test_best_checkpoint_restores(trained_run):
  best = json.loads((trained_run / "eval" / "best.json").read_text())
  run = runs.load_run(str(trained_run), "best")
  assert run.step == best["step"]
  assert run.checkpoint_kind == "best"


def test_same_latent_same_image_at_any_batch(trained_run):
  run = runs.load_run(str(trained_run), 8)
  latents = np.asarray(runs.latents(run, 64, seed=3))
  batch_64 = runs.Sampler(run.family, run.state, batch_size=64)(latents)
  batch_1 = runs.Sampler(run.family, run.state, batch_size=1)(latents[:3])
  np.testing.assert_allclose(batch_1, batch_64[:3], rtol=1e-5, atol=1e-5)


def test_constant_generator_flags_collapse(trained_run):
  run = runs.load_run(str(trained_run), 8)
  reals = evaluator.load_real_images(run.config, 16)
  one_latent = np.repeat(np.asarray(runs.latents(run, 1, seed=0)), 16, axis=0)
  fakes = runs.to_uint8(runs.Sampler(run.family, run.state, 16)(one_latent))
  records = evaluator.Evaluator(["diversity"], reals).evaluate(
      fakes, runs.base_settings(run, seed=0))
  assert records[0]["details"]["collapsed"]
  assert records[0]["value"] == pytest.approx(0.0, abs=1e-6)


def test_eval_config_validation():
  config = tiny_config()
  config.eval.best_metric = "fid"
  with pytest.raises(ConfigError, match="eval.best_metric"):
    train.train_and_evaluate(config, "/nonexistent/never-created")
  config = tiny_config()
  config.eval.metrics = "swd,bleu"
  with pytest.raises(ConfigError, match="eval.metrics"):
    train.train_and_evaluate(config, "/nonexistent/never-created")


def test_evaluate_cli_writes_results(trained_run, tmp_path):
  out = tmp_path / "eval"
  result = run_cli("jaxgan.evaluate", f"--workdir={trained_run}", "--metrics=swd,diversity,nn",
                   "--num=16", "--step=4", f"--out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "swd = " in result.stdout
  record = json.loads((out / "swd_step4.json").read_text())
  settings = record["settings"]
  assert settings["step"] == 4
  assert settings["num_fake"] == 16
  assert settings["resolution"] == 16
  assert settings["batchnorm_mode"].startswith("inference")
  assert settings["ema"] is False
  assert settings["weights_sha256"] is None
  nn_record = json.loads((out / "nn_step4.json").read_text())
  assert nn_record["settings"]["num_real"] == 64

  compared = run_cli("jaxgan.evaluate",
                     f"--compare={out / 'swd_step4.json'},{out / 'diversity_step4.json'}")
  assert compared.returncode == 2
  assert compared.stderr.startswith("Error: The two results were computed with different")
  assert "metric: 'swd' vs 'diversity'" in compared.stderr
  assert "Traceback" not in compared.stderr


def test_evaluate_cli_bad_input(trained_run, tmp_path):
  missing_weights = run_cli("jaxgan.evaluate", f"--workdir={trained_run}", "--metrics=fid",
                            f"--out={tmp_path}")
  assert missing_weights.returncode == 2
  assert "Inception" in missing_weights.stderr
  assert "pt_inception-2015-12-05-6726825d.pth" in missing_weights.stderr

  bad_step = run_cli("jaxgan.evaluate", f"--workdir={trained_run}", "--step=5",
                     f"--out={tmp_path}")
  assert bad_step.returncode == 2
  assert "saved steps are 4, 8" in bad_step.stderr
  assert "Traceback" not in bad_step.stderr
  assert bad_step.stderr.count("\n") == 1


def test_load_run_rejects_missing_workdir(tmp_path):
  with pytest.raises(runs.RunError, match="does not exist"):
    runs.load_config(str(tmp_path / "absent"))


def test_best_step_without_best_metric_names_key(tmp_path):
  config = default_config.get_config("tiny")
  (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))

  with pytest.raises(runs.RunError) as error:
    runs.load_run(str(tmp_path), "best")

  assert "eval.best_metric unset" in str(error.value)
  assert "--config.eval.best_metric=swd" in str(error.value)
  assert "--config.eval.every_epochs=<N>" in str(error.value)


def test_sample_cli(trained_run, tmp_path):
  result = run_cli("jaxgan.sample", f"--workdir={trained_run}", "--num=2", "--format=npz",
                   f"--out={tmp_path / 'npz'}", "--step=4")
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(tmp_path / "npz" / "samples.npz") as samples:
    assert samples["images"].shape == (2, 16, 16, 3)
    assert samples["images"].dtype == np.uint8

  gifs = run_cli("jaxgan.sample", f"--workdir={trained_run}", "--num=1", "--interpolate=4",
                 "--mode=slerp", f"--out={tmp_path / 'gif'}")
  assert gifs.returncode == 0, gifs.stderr[-3000:]
  assert (tmp_path / "gif" / "interpolation_slerp_0000.gif").is_file()
  settings = json.loads((tmp_path / "gif" / "sample_settings.json").read_text())
  assert settings["step"] == 8
  assert settings["interpolate_mode"] == "slerp"
  assert settings["classes"] is None

  grid = run_cli("jaxgan.sample", f"--workdir={trained_run}", f"--grid={tmp_path / 'grid.png'}")
  assert grid.returncode == 0, grid.stderr[-3000:]
  # The DCGAN grid is 5 x 5 images of 16 px with 2 px padding around and between them.
  assert np.asarray(Image.open(tmp_path / "grid.png")).shape[:2] == (5 * 16 + 6 * 2,) * 2
  record = json.loads((tmp_path / "grid.json").read_text())
  assert record["step"] == 8
  assert len(record["diversity_per_row"]) == 5


def test_sample_cli_rejects_truncation(trained_run, tmp_path):
  result = run_cli("jaxgan.sample", f"--workdir={trained_run}", "--truncation=0.7",
                   f"--out={tmp_path}")
  assert result.returncode == 2
  assert "dcgan family has no truncation" in result.stderr


def test_sample_cli_rejects_weights_on_dcgan(tmp_path):
  # The options are checked against config.json before any checkpoint is read.
  (tmp_path / "config.json").write_text(default_config.get_config("tiny").to_json())
  result = run_cli("jaxgan.sample", f"--workdir={tmp_path}", "--weights=ema",
                   f"--out={tmp_path / 'out'}")
  assert result.returncode == 2
  assert "keeps no moving average (EMA)" in result.stderr
  assert "Remove --weights=ema" in result.stderr
  assert "Traceback" not in result.stderr
  assert result.stderr.count("\n") == 1


def test_slerp_keeps_norm_and_endpoints():
  rng = np.random.default_rng(0)
  start, end = rng.normal(size=100), rng.normal(size=100)
  path = interpolation.interpolate(start, end, 5, "slerp")
  np.testing.assert_allclose(path[0], start, atol=1e-12)
  np.testing.assert_allclose(path[-1], end, atol=1e-12)
  linear_middle = interpolation.interpolate(start, end, 5, "linear")[2]
  assert np.linalg.norm(path[2]) > np.linalg.norm(linear_middle)


def _record(path: str, level: int, message: str) -> logging.LogRecord:
  return logging.LogRecord("absl", level, path, 1, message, ("/run/checkpoints",), None)


def test_quiet_filter_drops_read_only_notice():
  quiet = cli.QuietLibraryFilter()
  manager = "/venv/site-packages/orbax/checkpoint/checkpoint_manager.py"

  assert not quiet.filter(_record(manager, logging.WARNING, "Given directory is read only=%s"))
  assert quiet.filter(_record(manager, logging.WARNING, "Failed to save %s"))
  assert quiet.filter(_record("/repo/jaxgan/train.py", logging.WARNING, "Given directory %s"))
