"""Tests for image grids, PNG and GIF writing, and training-curve plots."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxgan import plots


def _random_images(count: int, size: int = 8, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return rng.normal(size=(count, size, size, 3)).astype(np.float32)


def _png_size(path: Path) -> tuple[int, int]:
  with Image.open(path) as image:
    assert image.format == "PNG"
    image.load()
    return image.size


def _fake_history(epochs: int) -> dict[str, list[float]]:
  rng = np.random.default_rng(1)
  epoch = np.arange(1, epochs + 1)
  return {
      "epoch": epoch.tolist(),
      "d_loss": (1.4 * np.exp(-epoch / 20) + 0.4 + 0.05 * rng.normal(size=epochs)).tolist(),
      "g_loss": (0.8 + np.log1p(epoch) / 3 + 0.1 * rng.normal(size=epochs)).tolist(),
      "d_real": np.clip(0.6 + epoch / 200 + 0.03 * rng.normal(size=epochs), 0, 1).tolist(),
      "d_fake": np.clip(0.4 - epoch / 200 + 0.03 * rng.normal(size=epochs), 0, 1).tolist(),
  }


def test_make_grid_shape_and_padding():
  grid = plots.make_grid(_random_images(25), rows=5, cols=5, padding=2)

  assert grid.shape == (52, 52, 3)
  assert grid.dtype == np.uint8
  # Border rows and columns, and the padding between the first two cells, keep pad_value.
  assert (grid[:2] == 255).all()
  assert (grid[:, :2] == 255).all()
  assert (grid[-2:] == 255).all()
  assert (grid[:, 10:12] == 255).all()


def test_make_grid_scales_to_uint8():
  images = np.zeros((2, 4, 4, 3), dtype=np.float32)
  images[0] = -3.0
  images[1] = 5.0
  images[1, 0, 0] = 1.0  # Halfway between min and max.

  grid = plots.make_grid(images, rows=1, cols=2, padding=0)

  assert grid[1, 1, 0] == 0
  assert grid[1, 5, 0] == 255
  assert grid[0, 4, 0] == 128


def test_make_grid_shares_scale_across_images():
  images = np.stack([np.full((4, 4, 3), value, dtype=np.float32) for value in (0.0, 1.0, 2.0)])

  grid = plots.make_grid(images, rows=1, cols=3, padding=0)

  assert grid[0, 0, 0] == 0
  assert grid[0, 4, 0] == 128
  assert grid[0, 8, 0] == 255


def test_make_grid_constant_is_mid_grey():
  grid = plots.make_grid(np.full((4, 8, 8, 3), 0.7), rows=2, cols=2, padding=0)

  assert (grid == 128).all()


def test_make_grid_nan_and_inf_map_to_zero():
  # Values rise from -1 at images[0, 0, 0, 0] to 1 at images[3, 3, 3, 2].
  images = np.linspace(-1.0, 1.0, 4 * 4 * 4 * 3).reshape(4, 4, 4, 3)
  images[0, 1, 1, 0] = np.nan
  images[1, 1, 1, 1] = np.inf
  images[2, 2, 2, 2] = -np.inf

  grid = plots.make_grid(images, rows=1, cols=4, padding=0)

  assert grid[1, 1, 0] == 0
  assert grid[1, 4 + 1, 1] == 0
  assert grid[2, 8 + 2, 2] == 0
  # The finite pixels still span 0..255, so Inf did not become the min or max.
  assert grid[0, 0, 0] == 0
  assert grid[3, 12 + 3, 2] == 255
  assert grid[2, 8, 0] not in (0, 255)


def test_make_grid_all_nan_is_black():
  grid = plots.make_grid(np.full((1, 4, 4, 3), np.nan), rows=1, cols=1, padding=0)

  assert (grid == 0).all()


def test_make_grid_extreme_range_does_not_overflow():
  images = np.zeros((2, 2, 2, 3))
  images[0] = -1e308
  images[1] = 1e308

  grid = plots.make_grid(images, rows=1, cols=2, padding=0)

  assert (grid[:, :2] == 0).all()
  assert (grid[:, 2:] == 255).all()


def test_make_grid_fewer_images_than_cells():
  images = np.zeros((3, 4, 4, 3))
  images[:, :, :, :] = np.linspace(0.0, 1.0, 3)[:, None, None, None]

  grid = plots.make_grid(images, rows=2, cols=2, padding=1, pad_value=7)

  assert grid.shape == (11, 11, 3)
  # The second row contains image 2 in the first cell and padding colour in the missing fourth cell.
  assert (grid[6:10, 1:5] == 255).all()
  assert (grid[6:10, 6:10] == 7).all()


@pytest.mark.parametrize(
    "shape, rows, cols, padding, pad_value",
    [
        ((8, 8, 3), 1, 1, 2, 255),  # Missing the batch axis.
        ((1, 8, 8), 1, 1, 2, 255),  # Missing the channel axis.
        ((1, 8, 8, 1), 1, 1, 2, 255),  # Greyscale.
        ((1, 8, 8, 4), 1, 1, 2, 255),  # RGBA.
        ((5, 8, 8, 3), 2, 2, 2, 255),  # More images than cells.
        ((1, 8, 8, 3), 0, 1, 2, 255),  # No rows.
        ((1, 8, 8, 3), 1, 1, -1, 255),  # Negative padding.
        ((1, 8, 8, 3), 1, 1, 2, 256),  # pad_value above 255.
    ],
)
def test_make_grid_invalid_inputs_raise(shape, rows, cols, padding, pad_value):
  with pytest.raises(ValueError):
    plots.make_grid(np.zeros(shape), rows, cols, padding=padding, pad_value=pad_value)


def test_save_png_roundtrip(tmp_path):
  rng = np.random.default_rng(2)
  image = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)
  path = tmp_path / "nested" / "folder" / "grid.png"

  plots.save_png(image, path)

  with Image.open(path) as loaded:
    assert loaded.format == "PNG"
    assert loaded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(loaded), image)
  assert [entry.name for entry in path.parent.iterdir()] == ["grid.png"]


def test_save_png_replaces_existing_file(tmp_path):
  path = tmp_path / "grid.png"
  plots.save_png(np.zeros((4, 4, 3), dtype=np.uint8), path)

  plots.save_png(np.full((6, 5, 3), 200, dtype=np.uint8), path)

  with Image.open(path) as loaded:
    assert loaded.size == (5, 6)
  assert [entry.name for entry in tmp_path.iterdir()] == ["grid.png"]


def test_save_png_failed_write_leaves_no_file(tmp_path):
  # A directory at the target path makes os.replace fail after the temporary file was written.
  (tmp_path / "grid.png").mkdir()

  with pytest.raises(OSError):
    plots.save_png(np.zeros((4, 4, 3), dtype=np.uint8), tmp_path / "grid.png")

  assert [entry.name for entry in tmp_path.iterdir()] == ["grid.png"]


@pytest.mark.parametrize("image", [np.zeros((4, 4, 3)), np.zeros((4, 4), dtype=np.uint8)])
def test_save_png_rejects_invalid_image(tmp_path, image):
  with pytest.raises(ValueError):
    plots.save_png(image, tmp_path / "grid.png")
  assert not list(tmp_path.iterdir())


def test_save_gif_frame_count(tmp_path):
  frames = [np.full((8, 8, 3), value, dtype=np.uint8) for value in (0, 80, 160, 240)]
  path = tmp_path / "progress" / "samples.gif"

  plots.save_gif(frames, path, duration_ms=150)

  with Image.open(path) as loaded:
    assert loaded.format == "GIF"
    assert loaded.n_frames == 4
    assert loaded.info["duration"] == 150
    assert loaded.info["loop"] == 0
  assert [entry.name for entry in path.parent.iterdir()] == ["samples.gif"]


def test_save_gif_empty_list_raises(tmp_path):
  with pytest.raises(ValueError, match="empty"):
    plots.save_gif([], tmp_path / "samples.gif")


def test_save_gif_mismatched_shapes_raise(tmp_path):
  frames = [np.zeros((8, 8, 3), dtype=np.uint8), np.zeros((8, 9, 3), dtype=np.uint8)]

  with pytest.raises(ValueError, match=r"frames\[1\]"):
    plots.save_gif(frames, tmp_path / "samples.gif")
  assert not list(tmp_path.iterdir())


def test_plot_curves_writes_png(tmp_path):
  epochs = list(range(1, 51))
  path = tmp_path / "curves.png"

  plots.plot_curves(
      {"d_loss": (epochs, [1.0 / e for e in epochs]), "g_loss": (epochs, [0.5] * 50)},
      path,
      title="Losses",
      ylabel="loss",
      markers=[(30, "spike")],
  )

  assert _png_size(path) == (900, 500)
  assert [entry.name for entry in tmp_path.iterdir()] == ["curves.png"]


def test_plot_curves_with_nan_values(tmp_path):
  path = tmp_path / "curves.png"
  values = [1.0, math.nan, 0.5, math.inf, 0.25]

  plots.plot_curves(
      {"loss": ([1, 2, 3, 4, 5], values), "all_nan": ([1, 2], [math.nan, math.nan])},
      path,
      title="Losses",
      log_y=True,
      markers=[(math.nan, "ignored")],
  )

  assert _png_size(path) == (900, 500)


@pytest.mark.parametrize("series", [{}, {"d_loss": ([], [])}], ids=["no_series", "no_points"])
def test_plot_curves_empty_series(tmp_path, series):
  path = tmp_path / "curves.png"

  plots.plot_curves(series, path, title="Losses")

  assert _png_size(path) == (900, 500)


def test_plot_curves_mismatched_lengths_raise(tmp_path):
  with pytest.raises(ValueError, match="d_loss"):
    plots.plot_curves({"d_loss": ([1, 2, 3], [0.1, 0.2])}, tmp_path / "curves.png", title="x")


def test_plot_training_curves_writes_both(tmp_path):
  history = _fake_history(10)
  history["aux_loss"] = [0.1] * 10
  out_dir = tmp_path / "plots"

  paths = plots.plot_training_curves(history, out_dir)

  assert paths == [out_dir / "losses.png", out_dir / "scores.png"]
  for path in paths:
    assert _png_size(path) == (900, 500)
  assert sorted(entry.name for entry in out_dir.iterdir()) == ["losses.png", "scores.png"]


def test_plot_training_curves_skips_scores(tmp_path):
  history = _fake_history(5)
  del history["d_real"]

  paths = plots.plot_training_curves(history, tmp_path)

  assert paths == [tmp_path / "losses.png"]
  assert not (tmp_path / "scores.png").exists()


def test_plot_training_curves_skips_losses(tmp_path):
  history = _fake_history(5)
  del history["d_loss"]
  del history["g_loss"]

  paths = plots.plot_training_curves(history, tmp_path)

  assert paths == [tmp_path / "scores.png"]


def test_plot_training_curves_no_keys(tmp_path):
  assert plots.plot_training_curves({}, tmp_path) == []
  assert plots.plot_training_curves({"epoch": [1, 2]}, tmp_path) == []
  assert not list(tmp_path.iterdir())


def test_plot_training_curves_unequal_lengths_raise(tmp_path):
  history = _fake_history(5)
  history["g_loss"] = history["g_loss"][:3]

  with pytest.raises(ValueError, match="g_loss"):
    plots.plot_training_curves(history, tmp_path)
  assert not list(tmp_path.iterdir())


def test_plot_training_curves_missing_x_key_raises(tmp_path):
  history = _fake_history(5)
  del history["epoch"]

  with pytest.raises(ValueError, match="epoch"):
    plots.plot_training_curves(history, tmp_path)
