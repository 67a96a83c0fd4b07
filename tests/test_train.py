"""End-to-end tests of the training loop: outputs, resume equality, devices, signals."""

import json
import os
import signal
import socket
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


def final_state(config, workdir, with_paths: bool = False):
  """Restores the newest checkpoint of a workdir as host NumPy arrays.

  With `with_paths`, each array comes with its key path in the state, as a string.
  """
  family = families.get(config.model.family)
  steps = pipeline.steps_per_epoch(config.data.num_generated, config.data.batch_size)
  checkpointer = checkpoint.Checkpointer(workdir, keep=10)
  state, meta = checkpointer.restore(checkpointer.latest_step(), family.init_state(config, steps))
  checkpointer.close()
  state = jax.device_get(state)
  if with_paths:
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves], meta
  return jax.tree.leaves(state), meta


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


class _StopAfterSteps(train.StopRequest):
  """A StopRequest that agrees to stop at its `STEPS`-th check, as a SIGTERM there would."""

  STEPS = 2

  def __init__(self):
    super().__init__()
    self.checks = 0

  def agreed(self) -> bool:
    self.checks += 1
    return self.checks >= self.STEPS


def test_mid_epoch_resume_keeps_epoch_means(tmp_path, monkeypatch):
  straight = tmp_path / "straight"
  resumed = tmp_path / "resumed"
  train.train_and_evaluate(tiny_config(), str(straight))
  with monkeypatch.context() as patch:
    patch.setattr(train, "StopRequest", _StopAfterSteps)
    train.train_and_evaluate(tiny_config(), str(resumed))
  _, stopped_meta = final_state(tiny_config(), str(resumed))
  train.train_and_evaluate(tiny_config(), str(resumed))

  assert stopped_meta.epoch == 0
  assert stopped_meta.batch_in_epoch == 2
  assert set(stopped_meta.epoch_totals["counts"].values()) == {2}
  assert stopped_meta.epoch_totals["seconds"] > 0
  _, straight_meta = final_state(tiny_config(), str(straight))
  _, resumed_meta = final_state(tiny_config(), str(resumed))
  assert resumed_meta.epoch_totals == {}
  assert sorted(resumed_meta.history) == sorted(straight_meta.history)
  for name, values in straight_meta.history.items():
    np.testing.assert_allclose(resumed_meta.history[name], values, rtol=1e-6, err_msg=name)
  summary = json.loads((resumed / "summary.json").read_text())
  assert summary["history"]["d_loss"] == resumed_meta.history["d_loss"]
  # The first epoch's wall time includes the time before the stop (compiling the step).
  assert resumed_meta.wall_times[0] > stopped_meta.epoch_totals["seconds"]


def test_meta_without_epoch_totals_restores():
  saved = {"epoch": 1, "batch_in_epoch": 2, "train_key": [0, 1], "config": {}, "history": {},
           "wall_times": [1.0]}

  meta = checkpoint.Meta(**saved)

  assert meta.epoch_totals == {}


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


def start_main(workdir: Path, *extra: str, num_devices: int = 1, log: Path | None = None):
  """Starts `python -m jaxgan.main` on the tiny config with `num_devices` forced CPU devices.

  Output goes to `log` when given (so that a test can watch it while the run goes on), else to a
  pipe.
  """
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}")
  command = [sys.executable, "-m", "jaxgan.main", "--config", "configs/default.py:tiny",
             "--workdir", str(workdir), *extra]
  output = subprocess.PIPE if log is None else log.open("w")
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=output,
                          stderr=subprocess.STDOUT, text=True)


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def start_processes(workdir: Path, logs: list[Path], *extra: str) -> list[subprocess.Popen]:
  """Starts one multi-process job of len(logs) processes on 127.0.0.1, one CPU device each."""
  address = f"127.0.0.1:{free_port()}"
  return [
      start_main(workdir, "--coordinator_address", address, "--num_processes", str(len(logs)),
                 "--process_id", str(index), "--initialization_timeout", "120", *extra, log=log)
      for index, log in enumerate(logs)
  ]


def finish(processes: list[subprocess.Popen], timeout: float) -> None:
  """Waits for every process; kills all of them if one is still running after `timeout` s."""
  deadline = time.monotonic() + timeout
  try:
    for process in processes:
      process.wait(timeout=max(deadline - time.monotonic(), 1))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()


def _gradient_is_zero(path: str) -> bool:
  """Returns whether a w7 state array has an exactly zero gradient, or follows from one that has.

  BatchNorm subtracts the batch mean, so the bias of each transposed conv before it in G gets a
  zero gradient in exact arithmetic. In float32 that gradient is rounding noise, which Adam
  scales to steps of up to about lr. Those biases, their Adam moments and the running means that
  absorb them therefore differ between device counts by up to about lr per step.
  """
  return ("up_convs" in path and "bias" in path) or ("up_norms" in path and "mean" in path)


def max_differences(config, reference: Path, other: Path) -> dict[str, float]:
  """Returns the max differences between the newest checkpoints of two runs.

  "metrics": max abs difference of the last epoch's metric means. "state": max over the state's
  arrays of the max abs difference divided by the reference array's max abs value, because
  Adam's second moments are 1e4 times larger than the weights. "zero_gradient": max abs
  difference of the arrays that `_gradient_is_zero` selects, which "state" leaves out.
  """
  reference_leaves, reference_meta = final_state(config, str(reference), with_paths=True)
  other_leaves, other_meta = final_state(config, str(other), with_paths=True)
  assert int(reference_meta.epoch) == int(other_meta.epoch) == config.train.num_epochs
  differences = {"metrics": 0.0, "state": 0.0, "zero_gradient": 0.0}
  for name in ("d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm", "d_grad_norm"):
    difference = abs(other_meta.history[name][-1] - reference_meta.history[name][-1])
    differences["metrics"] = max(differences["metrics"], difference)

  assert [path for path, _ in reference_leaves] == [path for path, _ in other_leaves]
  for (path, reference_leaf), (_, other_leaf) in zip(reference_leaves, other_leaves):
    reference_leaf = np.asarray(reference_leaf, np.float64)
    difference = float(np.max(np.abs(np.asarray(other_leaf, np.float64) - reference_leaf)))
    if _gradient_is_zero(path):
      differences["zero_gradient"] = max(differences["zero_gradient"], difference)
    else:
      scale = max(float(np.max(np.abs(reference_leaf))), 1e-12)
      differences["state"] = max(differences["state"], difference / scale)
  return differences


# Bounds on the differences from the 1-device run after the 8 steps of the tiny config. Measured
# on 2 CPU cores with jax 0.10.2, 2 and 4 devices gave at most 1.9e-6 for the metric means and
# 1.0e-5 for the state arrays (1.4e-6 as an abs difference of a weight), and 1.9e-3 for the
# zero-gradient arrays, about lr * steps = 1.6e-3. The bounds leave room for
# other CPUs' instruction sets and thread counts.
_INVARIANCE_TOLERANCE = {"metrics": 1e-4, "state": 1e-4, "zero_gradient": 1e-2}


@pytest.mark.slow
def test_device_and_process_counts_match(tmp_path):
  # 1 device (this process) is the reference for 2 and 4 forced devices in one process, and for
  # 2 processes of one device each. The 2-process job is stopped by a SIGTERM to process 1 only,
  # so both processes must agree to stop at the same step. Then both resume from the checkpoint.
  config = tiny_config()
  devices = {n: start_main(tmp_path / f"devices{n}", num_devices=n,
                          log=tmp_path / f"devices{n}.log") for n in (2, 4)}
  logs = [tmp_path / f"process{i}.log" for i in range(2)]
  job = start_processes(tmp_path / "processes", logs)

  # The first step report comes after the signal handler is installed.
  wait_for(lambda: "step 2/8" in logs[1].read_text(), timeout=900)
  job[1].send_signal(signal.SIGTERM)
  train.train_and_evaluate(config, str(tmp_path / "one"))
  print(f"reference run: {jax.device_count()} device(s)")
  finish(job, timeout=600)
  outputs = [log.read_text() for log in logs]
  for process, output in zip(job, outputs):
    assert process.returncode == 0, output[-3000:]
    assert "Stopped at step" in output or "Stopped after epoch" in output, output[-3000:]
  assert "Received SIGTERM" in outputs[1]
  assert "process 1 of 2, 1 local and 2 global cpu device(s)" in outputs[1]
  stopped_at = checkpoint_steps(tmp_path / "processes")
  assert stopped_at and stopped_at[-1] < 8

  resume_logs = [tmp_path / f"resume{i}.log" for i in range(2)]
  resumed_job = start_processes(tmp_path / "processes", resume_logs)
  finish(resumed_job, timeout=900)
  for process, log in zip(resumed_job, resume_logs):
    output = log.read_text()
    assert process.returncode == 0, output[-3000:]
    assert f"Resuming from checkpoint {tmp_path / 'processes'}/checkpoints/{stopped_at[-1]}" in output
  assert checkpoint_steps(tmp_path / "processes")[-1] == 8
  # Only process 0 writes files other than checkpoints.
  assert len(list((tmp_path / "processes").glob("events.out.tfevents.*"))) == 2
  assert (tmp_path / "processes" / "samples" / "epoch_0002.png").is_file()

  finish(list(devices.values()), timeout=600)
  for n, process in devices.items():
    output = (tmp_path / f"devices{n}.log").read_text()
    assert process.returncode == 0, output[-3000:]
    assert f"{n} global cpu device(s)" in output
  runs = {"2 devices": tmp_path / "devices2", "4 devices": tmp_path / "devices4",
          "2 processes": tmp_path / "processes"}
  for name, workdir in runs.items():
    differences = max_differences(config, tmp_path / "one", workdir)
    print(f"{name}: " + ", ".join(f"{key} {value:.2e}" for key, value in differences.items()))
    for key, bound in _INVARIANCE_TOLERANCE.items():
      assert differences[key] < bound, (name, key, differences[key])


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


def test_second_ctrl_c_exits_130_in_one_line(tmp_path):
  log = tmp_path / "main.log"
  workdir = tmp_path / "run"
  extra = ("--config.data.batch_size=4", "--config.train.num_epochs=50")
  process = start_main(workdir, *extra, log=log)
  wait_for(lambda: checkpoint_steps(workdir) == [16], timeout=300)
  process.send_signal(signal.SIGINT)
  # The first Ctrl+C ends the step and starts a save, which the second one cuts short.
  time.sleep(0.1)
  process.send_signal(signal.SIGINT)
  process.wait(timeout=120)
  output = log.read_text()

  assert process.returncode == 130, output[-3000:]
  assert "Traceback" not in output
  assert "KeyboardInterrupt" not in output
  last_line = output.strip().splitlines()[-1]
  assert last_line.startswith("Stopped at once by"), last_line
  assert f"the newest checkpoint is step {checkpoint_steps(workdir)[-1]}" in last_line


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


def test_dtype_change_is_not_a_shape_change():
  current = ml_collections.ConfigDict({"model": {"arch": "w7", "dtype": "bfloat16"}})
  saved = {"model": {"arch": "w7", "dtype": "float32"}}

  assert train.structural_differences(
      saved, current, train.SHAPE_KEYS, exclude=train.SHAPE_NEUTRAL_KEYS) == []
  assert train.structural_differences(saved, current) == ["model.dtype: 'float32' -> 'bfloat16'"]


def test_ctrl_c_after_stop_saved_ignored():
  with train.StopRequest() as stop_request:
    signal.raise_signal(signal.SIGINT)
    assert stop_request.requested
    stop_request.saved = True
    # A second Ctrl+C would stop at once without saving, but the checkpoint is already saved.
    signal.raise_signal(signal.SIGINT)
