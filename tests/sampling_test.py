"""Tests of image grids, PNG/GIF files, latent interpolation and plots."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from catgan_jax import metrics_log
from catgan_jax import plots
from catgan_jax import sampling


def test_make_grid_shape_dtype_and_values():
  images = np.full((5, 8, 6, 3), -1.0, np.float32)
  images[0] = 1.0
  grid = sampling.make_grid(images, padding=2)
  # 5 images -> ceil(sqrt(5)) = 3 columns, 2 rows:
  # height 2 * (8 + 2) + 2 = 22, width 3 * (6 + 2) + 2 = 26.
  assert grid.shape == (22, 26, 3)
  assert grid.dtype == np.uint8
  assert (grid[2:10, 2:8] == 255).all()  # First tile: +1 -> 255.
  assert (grid[2:10, 10:16] == 0).all()  # Second tile: -1 -> 0.
  assert (grid[12:20, 18:24] == 0).all()  # Empty sixth cell stays black.


def test_pixel_std_across_samples_known_values():
  same = np.tile(
      np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 4, 4, 3), (8, 1, 1, 1)
  )
  # One image repeated (a collapsed generator): 0, up to float rounding.
  assert sampling.pixel_std_across_samples(same) == pytest.approx(0.0, abs=1e-7)
  # Half the batch black, half white: every pixel is 0 or 1, std 0.5.
  halves = np.concatenate([-np.ones((3, 2, 2, 3)), np.ones((3, 2, 2, 3))])
  assert sampling.pixel_std_across_samples(halves) == pytest.approx(0.5)
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (4, 5, 5, 3))
  assert sampling.pixel_std_across_samples(images) == pytest.approx(
      np.mean(np.std(images / 2, axis=0)), rel=1e-6
  )


def test_pixel_std_across_samples_rejects_a_single_image():
  with pytest.raises(ValueError, match=r'at least 2 images; got shape'):
    sampling.pixel_std_across_samples(np.zeros((1, 4, 4, 3)))


def test_make_grid_columns_and_grayscale():
  grid = sampling.make_grid(np.zeros((4, 3, 3, 1)), ncol=4, padding=0)
  assert grid.shape == (3, 12, 3)
  assert (grid == 128).all()  # 0 -> round(127.5) = 128.


def test_make_grid_rejects_bad_input():
  with pytest.raises(ValueError, match='NHWC'):
    sampling.make_grid(np.zeros((4, 4, 3)))


def test_save_png_creates_directories(tmp_path):
  path = os.path.join(tmp_path, 'a', 'b', 'grid.png')
  sampling.save_png(sampling.make_grid(np.zeros((4, 4, 4, 3))), path)
  with Image.open(path) as image:
    assert image.size == (14, 14)
    assert image.mode == 'RGB'


def _gif_durations(path: str) -> list[int]:
  durations = []
  with Image.open(path) as gif:
    assert gif.info['loop'] == 0
    for i in range(gif.n_frames):
      gif.seek(i)
      durations.append(gif.info['duration'])
  return durations


def test_save_gif_frames(tmp_path):
  frames = [np.full((6, 6, 3), v, np.uint8) for v in (0, 60, 120, 180, 240)]
  frames.append(np.zeros((6, 6, 3), np.float32))  # Float frames work too.
  path = os.path.join(tmp_path, 'sub', 'progress.gif')
  sampling.save_gif(frames, path, duration_ms=50)
  assert _gif_durations(path) == [50] * 6
  with Image.open(path) as gif:
    gif.seek(5)
    assert gif.convert('RGB').getpixel((0, 0)) == (128, 128, 128)


def test_save_gif_merges_repeated_frames_keeping_the_time(tmp_path):
  # Pillow stores identical consecutive frames as one longer frame.
  frames = [np.full((6, 6, 3), v, np.uint8) for v in (0, 0, 100)]
  path = os.path.join(tmp_path, 'progress.gif')
  sampling.save_gif(frames, path, duration_ms=50)
  assert _gif_durations(path) == [100, 50]
  with pytest.raises(ValueError, match='at least one frame'):
    sampling.save_gif([], path)


def test_slerp_interpolation():
  rng = np.random.default_rng(0)
  z0, z1 = rng.standard_normal(100), rng.standard_normal(100)
  path = sampling.interpolate(z0, z1, 7)
  assert path.shape == (7, 100) and path.dtype == np.float32
  np.testing.assert_allclose(path[0], z0, rtol=1e-6)
  np.testing.assert_allclose(path[-1], z1, rtol=1e-6)
  # Slerp between vectors of equal norm keeps that norm along the way; the
  # straight line's midpoint is shorter.
  z1 = z1 / np.linalg.norm(z1) * np.linalg.norm(z0)
  norms = np.linalg.norm(sampling.interpolate(z0, z1, 5), axis=1)
  np.testing.assert_allclose(norms, np.linalg.norm(z0), rtol=1e-5)
  linear = sampling.interpolate(z0, z1, 3, spherical=False)
  np.testing.assert_allclose(linear[1], (z0 + z1) / 2, rtol=1e-6)
  assert np.linalg.norm(linear[1]) < np.linalg.norm(z0)


def test_interpolate_parallel_latents_and_errors():
  z = np.ones(4)
  path = sampling.interpolate(z, 2 * z, 3)  # Parallel: falls back to lerp.
  np.testing.assert_allclose(path[1], 1.5 * z)
  with pytest.raises(ValueError, match='num >= 2'):
    sampling.interpolate(z, z, 1)
  with pytest.raises(ValueError, match='differ in shape'):
    sampling.interpolate(z, np.ones(5), 3)


def test_plot_metrics_writes_pngs(tmp_path):
  records = [
      {
          'step': 0,
          'd_loss': 1.4,
          'g_loss': 0.7,
          'd_real_acc': 0.5,
          'd_fake_acc': 0.5,
          'D_x': 0.5,
          'D_G_z': 0.5,
      },
      {
          'step': 50,
          'd_loss': 0.9,
          'g_loss': 1.8,
          'd_real_acc': 0.8,
          'd_fake_acc': 0.9,
          'D_x': 0.7,
          'D_G_z': 0.2,
      },
      {'step': 100, 'fid': 210.5},
      {'step': 100, 'd_loss': 0.8, 'g_loss': float('nan')},
      {'step': 200, 'fid': 150.25, 'sample_std': 0.12},
  ]
  path = os.path.join(tmp_path, 'metrics.jsonl')
  with open(path, 'w') as f:
    for record in records:
      f.write(json.dumps(record) + '\n')
    f.write('{"step": 300, "d_lo')  # A run killed mid-write.
  out = os.path.join(tmp_path, 'plots')
  written = plots.plot_metrics(path, out)
  names = sorted(os.path.basename(p) for p in written)
  # No KID in the records, so no KID plot.
  assert names == [
      'd_accuracy.png',
      'd_outputs.png',
      'fid.png',
      'losses.png',
      'sample_std.png',
  ]
  for p in written:
    with Image.open(p) as image:
      assert image.format == 'PNG' and image.size == (700, 400)


def test_read_metrics_skips_bad_lines(tmp_path):
  path = os.path.join(tmp_path, 'metrics.jsonl')
  with open(path, 'w') as f:
    f.write('{"step": 1, "fid": 3.0}\n\nnot json\n[1, 2]\n{"step": 2}\n')
  assert metrics_log.read_records(path) == [
      {'step': 1, 'fid': 3.0},
      {'step': 2},
  ]
