"""End-to-end tests of the training loop: outputs, resume equality, devices, signals."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

from jaxgan import checkpoint
from jaxgan import families
from jaxgan import train
from jaxgan.data import pipeline
from jaxgan.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from configs import default as default_config  # pylint: disable=g-import-not-at-top,wrong-import-position

SHARED_DATA = Path(os.environ.get("JAXGAN_SHARED_DATA", REPO.parent / "shared" / "data"))


def tiny_config(**overrides):
  config = default_config.get_config("tiny")
  config.train.log_every_steps = 1
  for key, value in overrides.items():
    section, name = key.split(".")
    config[section][name] = value
  return config


def final_state(config, workdir):
  """Restores the newest checkpoint of a workdir as host NumPy arrays."""
  family = families.get(config.model.family)
  steps = pipeline.steps_per_epoch(config.data.num_generated, config.data.batch_size)
  checkpointer = checkpoint.Checkpointer(workdir, keep=10)
  state, meta = checkpointer.restore(checkpointer.latest_step(), family.init_state(config, steps))
  checkpointer.close()
  return jax.tree.leaves(jax.device_get(state)), meta


def test_train_writes_outputs(tmp_path):
  config = tiny_config()
  meta = train.train_and_evaluate(config, str(tmp_path))

  assert meta.epoch == 2
  assert (tmp_path / "samples" / "epoch_0001.png").is_file()
  assert (tmp_path / "samples" / "epoch_0002.png").is_file()
  assert (tmp_path / "plots" / "losses.png").is_file()
  assert (tmp_path / "plots" / "scores.png").is_file()
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["epochs_done"] == 2
  assert len(summary["wall_time_per_epoch_s"]) == 2
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [4, 8]
  assert list(tmp_path.glob("events.out.tfevents.*"))


def test_tensorboard_events_hold_metrics(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  train.train_and_evaluate(tiny_config(), str(tmp_path))
  events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
  events.Reload()
  tags = set(events.Tags()["tensors"])
  for name in ("d_loss", "g_loss", "d_real", "d_fake", "epoch/d_loss", "steps_per_sec"):
    assert name in tags
  assert len(events.Tensors("d_loss")) == 8
  assert "samples" in tags or events.Tags()["images"]


def test_input_wait_fraction_of_slow_input(tmp_path, monkeypatch):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top

  original_iterate = pipeline.iterate_epoch

  def slow_iterate(dataset):
    for element in original_iterate(dataset):
      time.sleep(0.5)
      yield element

  monkeypatch.setattr(pipeline, "iterate_epoch", slow_iterate)
  train.train_and_evaluate(tiny_config(), str(tmp_path))
  events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
  events.Reload()
  fractions = {event.step: float(tensor_util.make_ndarray(event.tensor_proto))
               for event in events.Tensors("input_wait_fraction")}
  assert sorted(fractions) == list(range(1, 9))
  # Step 1 also compiles the step. Step 5 is the first of epoch 2: its window starts with the
  # epoch, not before the previous epoch's samples and checkpoint.
  for step in range(2, 9):
    assert 0.5 < fractions[step] <= 1.0, (step, fractions)


def test_resume_equals_uninterrupted_run(tmp_path):
  straight = tmp_path / "straight"
  resumed = tmp_path / "resumed"
  train.train_and_evaluate(tiny_config(), str(straight))
  train.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), str(resumed))
  train.train_and_evaluate(tiny_config(), str(resumed), allow_config_change=False)

  straight_leaves, straight_meta = final_state(tiny_config(), str(straight))
  resumed_leaves, resumed_meta = final_state(tiny_config(), str(resumed))
  assert len(straight_leaves) == len(resumed_leaves)
  for a, b in zip(straight_leaves, resumed_leaves):
    np.testing.assert_array_equal(a, b)
  assert straight_meta.history == resumed_meta.history
  last_grid = "samples/epoch_0002.png"
  assert (straight / last_grid).read_bytes() == (resumed / last_grid).read_bytes()


def test_resume_rejects_structural_change(tmp_path):
  train.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), str(tmp_path))
  with pytest.raises(ConfigError, match=r"model\.width: 8 -> 16"):
    train.train_and_evaluate(tiny_config(**{"model.width": 16}), str(tmp_path))


def test_shape_change_rejected_even_when_allowed(tmp_path):
  train.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), str(tmp_path))
  with pytest.raises(ConfigError, match=r"model\.width: 8 -> 16"):
    train.train_and_evaluate(tiny_config(**{"model.width": 16}), str(tmp_path),
                             allow_config_change=True)


def test_batch_change_allowed_with_flag(tmp_path):
  train.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), str(tmp_path))
  with pytest.raises(ConfigError, match=r"data\.batch_size: 16 -> 8"):
    train.train_and_evaluate(tiny_config(**{"data.batch_size": 8}), str(tmp_path))
  meta = train.train_and_evaluate(tiny_config(**{"data.batch_size": 8}), str(tmp_path),
                                  allow_config_change=True)
  assert meta.epoch == 2


def test_finished_run_does_nothing(tmp_path):
  train.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), str(tmp_path))
  meta = train.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), str(tmp_path))
  assert meta.epoch == 1
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [4]


_LOSSES_SCRIPT = """
import json, sys
import jax
sys.path.insert(0, {repo!r})
from configs import default
from jaxgan import train
config = default.get_config("tiny")
config.train.num_epochs = 1
config.train.log_every_steps = 1
meta = train.train_and_evaluate(config, {workdir!r})
print("RESULT", json.dumps({{"devices": jax.device_count(), "history": meta.history}}))
"""


def run_with_devices(num_devices: int, workdir: Path) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}")
  script = _LOSSES_SCRIPT.format(repo=str(REPO), workdir=str(workdir))
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_two_devices_match_one(tmp_path):
  one = run_with_devices(1, tmp_path / "one")
  two = run_with_devices(2, tmp_path / "two")

  assert one["devices"] == 1
  assert two["devices"] == 2
  for name in ("d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm", "d_grad_norm"):
    np.testing.assert_allclose(two["history"][name], one["history"][name], rtol=1e-4, atol=1e-5)


def start_main(workdir: Path, *extra: str) -> subprocess.Popen:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  command = [sys.executable, "-m", "jaxgan.main", "--config", "configs/default.py:tiny",
             "--workdir", str(workdir), *extra]
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout: float) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return
    time.sleep(0.05)
  raise AssertionError("timed out waiting for the run")


def checkpoint_steps(workdir: Path) -> list[int]:
  directory = workdir / "checkpoints"
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_checkpoint(tmp_path):
  # 64 images in batches of 4 give 16 steps per epoch; epoch 1 ends with a checkpoint at step 16.
  extra = ("--config.data.batch_size=4", "--config.train.num_epochs=3")
  process = start_main(tmp_path, *extra)
  wait_for(lambda: checkpoint_steps(tmp_path) == [16], timeout=300)
  time.sleep(0.3)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=30)
  assert checkpoint_steps(tmp_path)[0] == 16

  rerun = start_main(tmp_path, *extra)
  output, _ = rerun.communicate(timeout=600)
  assert rerun.returncode == 0, output[-3000:]
  assert "Resuming from checkpoint" in output
  assert checkpoint_steps(tmp_path)[-1] == 48


@pytest.mark.slow
def test_sigterm_saves_and_exits_zero(tmp_path):
  extra = ("--config.data.batch_size=4", "--config.train.num_epochs=50")
  process = start_main(tmp_path, *extra)
  wait_for(lambda: checkpoint_steps(tmp_path) == [16], timeout=300)
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)

  assert process.returncode == 0, output[-3000:]
  assert "Received SIGTERM" in output
  steps = checkpoint_steps(tmp_path)
  assert steps[-1] > 16
  assert "Traceback" not in output


@pytest.mark.skipif(not (SHARED_DATA / "simpsons_faces").is_dir(),
                    reason="the shared Simpsons faces are not on this machine")
def test_folder_source_trains_on_real_faces(tmp_path):
  config = tiny_config(**{"data.source": "folder", "data.batch_size": 64,
                          "train.num_epochs": 1, "train.log_every_steps": 5})
  config.data.dir = str(SHARED_DATA / "simpsons_faces")
  config.data.exclude_known_non_faces = True
  meta = train.train_and_evaluate(config, str(tmp_path))
  assert meta.epoch == 1
  assert len(meta.history["d_loss"]) == 1
  assert np.isfinite(meta.history["d_loss"][0])
  assert (tmp_path / "samples" / "epoch_0001.png").is_file()


def test_structural_differences_skips_keys_added_later():
  # A run saved before model.init existed resumes; a key that both configs hold still counts.
  current = ml_collections.ConfigDict(
      {"model": {"arch": "w7", "init": "truncated_normal"}, "data": {"image_size": 32}})
  saved = {"model": {"arch": "w7"}, "data": {"image_size": 32}}

  assert train.structural_differences(saved, current, train.SHAPE_KEYS) == []
  saved["model"]["arch"] = "reproduct"
  assert train.structural_differences(saved, current, train.SHAPE_KEYS) == [
      "model.arch: 'reproduct' -> 'w7'"]
