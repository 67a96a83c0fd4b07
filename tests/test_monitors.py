"""Tests of the spike detector, the collapse monitor, events.jsonl and checkpoint retention."""

import json

import numpy as np
import pytest

from jaxgan import checkpoint
from jaxgan import config_lib
from jaxgan import monitors
from jaxgan.base_configs import dcgan
from jaxgan.errors import ConfigError

# The base config's detector settings, so the tests check the defaults that runs get.
_DEFAULTS = dcgan.get_config().monitor
_SETTINGS = dict(window=_DEFAULTS.spike_window, min_history=_DEFAULTS.spike_min_history,
                 threshold=_DEFAULTS.spike_threshold, mad_floor=_DEFAULTS.spike_mad_floor)


def spike_indices(values):
  return [index for index, _ in monitors.find_spikes(values, **_SETTINGS)]


def test_planted_spikes_all_found():
  rng = np.random.default_rng(0)
  values = 1.0 + 0.02 * rng.standard_normal(300)
  planted = [40, 117, 118, 200, 290]
  values[planted] += [0.5, 0.6, -0.4, 1.5, -0.3]

  assert spike_indices(values) == planted
  deviations = dict(monitors.find_spikes(values, **_SETTINGS))
  assert deviations[200].magnitude > _DEFAULTS.spike_threshold
  assert deviations[118].magnitude < -_DEFAULTS.spike_threshold


def test_smooth_decay_no_alarm():
  epochs = np.arange(400)
  values = 0.6 + 1.4 * np.exp(-epochs / 40.0)
  assert spike_indices(values) == []


@pytest.mark.parametrize("seed", range(5))
def test_gaussian_noise_no_alarm(seed):
  rng = np.random.default_rng(seed)
  values = 0.7 + 0.05 * rng.standard_normal(400)
  assert spike_indices(values) == []


def test_slow_trend_no_alarm():
  rng = np.random.default_rng(7)
  epochs = np.arange(400)
  values = 0.5 + 0.004 * epochs + 0.02 * rng.standard_normal(400)
  assert spike_indices(values) == []


def test_no_flag_before_min_history():
  values = [1.0] * (_DEFAULTS.spike_min_history - 1) + [50.0]
  assert spike_indices(values) == []
  assert spike_indices(values[:-1] + [1.0, 50.0]) == [_DEFAULTS.spike_min_history]


def test_constant_curve_uses_mad_floor():
  # MAD is 0 here; a 0.5 % change stays below the floor of 1 % of the median, 20 % does not.
  values = [2.0] * 30 + [2.01, 2.0, 2.4]
  assert spike_indices(values) == [32]
  deviation = dict(monitors.find_spikes(values, **_SETTINGS))[32]
  assert deviation.mad == pytest.approx(0.02)
  assert deviation.magnitude == pytest.approx(20.0)


def tiny_state():
  return {"w": np.arange(3, dtype=np.float32)}


def make_meta(**fields):
  return checkpoint.Meta(epoch=0, batch_in_epoch=0, train_key=[0, 0], config={}, history={},
                         wall_times=[], **fields)


def test_detector_state_survives_checkpoint(tmp_path):
  rng = np.random.default_rng(3)
  curves = {curve: 1.0 + 0.03 * rng.standard_normal(60) for curve in monitors.SPIKE_CURVES}
  curves["g_loss"][31] += 1.0  # right after the resume boundary at index 30
  config = dcgan.get_config()

  def feed(monitor, start, stop):
    events = []
    for index in range(start, stop):
      means = {curve: float(values[index]) for curve, values in curves.items()}
      events += monitor.update_curves(means, "epoch", epoch=index + 1, step=10 * (index + 1))
    return events

  straight = feed(monitors.Monitors(config, {}, None), 0, 60)

  first = monitors.Monitors(config, {}, None)
  before = feed(first, 0, 30)
  checkpointer = checkpoint.Checkpointer(tmp_path, keep=2)
  checkpointer.save(300, tiny_state(), make_meta(monitor=first.state()))
  restored = checkpointer.restore_meta(300)
  checkpointer.close()
  after = feed(monitors.Monitors(config, restored.monitor, None), 30, 60)

  assert [(e.epoch, e.curve) for e in straight] == [(32, "g_loss")]
  assert before + after == straight


def test_events_file_format(tmp_path):
  event = monitors.Event(kind="spike", epoch=3, step=12, curve="d_loss", scale="steps",
                         value=2.5, median=0.7, mad=0.1, magnitude=18.0, pinned_steps=[8, 4])
  monitors.append_events(str(tmp_path), [event])

  line = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])
  assert list(line) == ["kind", "epoch", "step", "curve", "scale", "value", "median", "mad",
                        "magnitude", "pinned_steps"]
  assert line["pinned_steps"] == [8, 4]
  assert monitors.read_events(str(tmp_path / "events.jsonl")) == [event]


def test_drop_events_after_resume_step(tmp_path):
  events = [monitors.Event("spike", epoch, 4 * epoch, "g_loss", "epoch", 1.0, 0.5, 0.1, 5.0)
            for epoch in (1, 2, 3)]
  monitors.append_events(str(tmp_path), events)
  with open(tmp_path / "events.jsonl", "a") as f:
    f.write('{"kind": "spi')  # a line cut short by a crash

  assert monitors.drop_events_after(str(tmp_path), 8) == 2
  assert monitors.read_events(str(tmp_path / "events.jsonl")) == events[:2]


def real_like_images(count, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, size=(count, 8, 8, 3))


def test_collapse_fires_for_constant_generator():
  collapse = monitors.CollapseMonitor(real_like_images(25), threshold=0.25)
  same = np.repeat(real_like_images(1, seed=1), 25, axis=0)
  assert not collapse.update(real_like_images(25, seed=3))[1]

  ratio, starts = collapse.update(same)
  assert ratio == pytest.approx(0.0, abs=1e-6)
  assert starts
  # A collapse that lasts gives one event, not one per grid.
  assert collapse.update(same) == (pytest.approx(0.0, abs=1e-6), False)


def test_collapse_silent_before_first_diverse_grid():
  # An untrained generator's outputs are alike: no event until a grid has once been diverse.
  collapse = monitors.CollapseMonitor(real_like_images(25), threshold=0.25)
  same = np.repeat(real_like_images(1, seed=1), 25, axis=0)
  assert not collapse.update(same)[1]
  assert not collapse.update(same)[1]


def test_collapse_silent_for_varied_images():
  collapse = monitors.CollapseMonitor(real_like_images(25), threshold=0.25)
  ratio, starts = collapse.update(real_like_images(25, seed=2))
  assert ratio == pytest.approx(1.0, abs=0.1)
  assert not starts


def test_class_balanced_references():
  labels = np.array([0] * 10 + [1] * 2 + [2] * 30)

  indices = monitors.class_balanced_indices(labels, 9, seed=0)

  # The classes take turns and the class of 2 images runs out, so the others fill its place.
  assert np.bincount(labels[indices], minlength=3).tolist() == [4, 2, 3]
  assert len(set(indices.tolist())) == 9
  np.testing.assert_array_equal(indices, monitors.class_balanced_indices(labels, 9, seed=0))
  assert not np.array_equal(indices, monitors.class_balanced_indices(labels, 9, seed=1))
  np.testing.assert_array_equal(monitors.class_balanced_indices(labels, 100, seed=0),
                                np.arange(len(labels)))


def test_retention_keeps_ring_regular_and_pinned(tmp_path):
  # ring 2, keep 1: steps 1..6, where 3 and 6 are regular and 2 was pinned by an event.
  checkpointer = checkpoint.Checkpointer(tmp_path, keep=1, ring=2)
  meta = make_meta()
  for step in range(1, 7):
    if step % 3:
      meta.ring_steps.append(step)
    if step == 3:
      meta.pinned_steps.append(2)
    checkpointer.save(step, tiny_state(), meta)
  assert checkpointer.all_steps() == [2, 5, 6]
  checkpointer.close()

  # A new checkpointer (a restarted run) takes the pins from the Meta it saves.
  restarted = checkpoint.Checkpointer(tmp_path, keep=1, ring=2)
  for step in (7, 8, 9):
    meta.ring_steps.append(step)
    restarted.save(step, tiny_state(), meta)
  assert restarted.all_steps() == [2, 6, 8, 9]
  restarted.close()


@pytest.mark.parametrize("key, value, match", [
    ("monitor.spike_threshold", 0.0, "must be a number > 0"),
    ("monitor.spike_window", 1, "must be an integer >= 2"),
    ("monitor.spike_min_history", 31, "at most monitor.spike_window=30"),
    ("monitor.window_steps", -1, "must be an integer >= 0"),
    ("monitor.collapse_num_real", 1, "must be an integer >= 2"),
    ("train.ring_epochs", -1, "must be an integer >= 0"),
])
def test_invalid_monitor_config_rejected(key, value, match):
  config = dcgan.get_config()
  section, name = key.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=match):
    config_lib.validate_common(config)


def test_training_run_events_and_pins(spiky_run):
  # See the spiky_run fixture: 4 steps per epoch, spikes at epoch 3, a collapse at epoch 4.
  lines = (spiky_run / "events.jsonl").read_text().splitlines()
  events = [json.loads(line) for line in lines]
  collapse = [e for e in events if e["kind"] == "collapse"]
  spikes = [e for e in events if e["kind"] == "spike"]

  assert [(e["epoch"], e["step"], e["pinned_steps"]) for e in collapse] == [(4, 16, [12])]
  assert collapse[0]["value"] == collapse[0]["magnitude"] < 10.0
  assert sorted((e["scale"], e["curve"]) for e in spikes) == sorted(
      (scale, curve) for scale in ("epoch", "steps") for curve in monitors.SPIKE_CURVES)
  for event in spikes:
    assert (event["epoch"], event["step"], event["pinned_steps"]) == (3, 12, [8])
    assert abs(event["magnitude"]) > 1e-9

  # Steps 8 and 12 survive because they are pinned, 16 is the newest; 4 left the ring unpinned.
  checkpointer = checkpoint.Checkpointer(spiky_run, keep=1, read_only=True)
  assert checkpointer.all_steps() == [8, 12, 16]
  assert checkpointer.restore_meta(16).pinned_steps == [8, 12]
  checkpointer.close()


def test_training_run_tensorboard_monitor_tags(spiky_run):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  events = event_accumulator.EventAccumulator(str(spiky_run), size_guidance={"tensors": 0})
  events.Reload()
  tags = set(events.Tags()["tensors"])
  assert "monitor/spike_magnitude/d_loss" in tags
  assert "monitor/step_spike_magnitude/g_loss" in tags
  assert "monitor/events" in tags
  assert len(events.Tensors("monitor/diversity_ratio")) == 4
