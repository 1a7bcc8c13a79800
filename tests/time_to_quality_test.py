"""Tests of benchmarks/time_to_quality.py's scoring of saved samples."""

import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import time_to_quality
from tests import helpers


def _save(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def _points(num_points=2, num_images=6, size=8):
  rng = np.random.default_rng(0)
  arrays = {
      'steps': np.array([10 * (k + 1) for k in range(num_points)]),
      'train_wall_s': np.array([1.5 * (k + 1) for k in range(num_points)]),
      'batch': np.array(4),
  }
  for k in range(num_points):
    arrays[f'images_{k}'] = rng.integers(
        0, 256, (num_images, size, size, 3), dtype=np.uint8
    )
  return arrays


def test_replay_hands_out_the_saved_images_in_order_in_minus_one_to_one():
  images = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
  generate = time_to_quality.replay(images)
  first = generate(np.zeros((3, 7)))
  second = generate(np.zeros((2, 7)))
  np.testing.assert_array_equal(
      np.concatenate([first, second]),
      images.astype(np.float32) / 127.5 - 1.0,
  )
  assert first.dtype == np.float32
  with pytest.raises(ValueError, match='5 images saved, 6 asked for'):
    generate(np.zeros((1, 7)))


def test_load_samples_reads_each_point(tmp_path):
  arrays = _points()
  points, loads = time_to_quality.load_samples(
      _save(tmp_path / 's.npz', **arrays), num_samples=6, image_size=8
  )
  assert [p[:3] for p in points] == [(10, 1.5, 4), (20, 3.0, 4)]
  np.testing.assert_array_equal(points[1][3], arrays['images_1'])
  assert loads == {}
  arrays['loadavg_after'] = np.array([2.0, 1.5, 1.25])
  _, loads = time_to_quality.load_samples(
      _save(tmp_path / 's.npz', **arrays), num_samples=6, image_size=8
  )
  assert loads == {'loadavg_after': [2.0, 1.5, 1.25]}


@pytest.mark.parametrize(
    'change, message',
    [
        (lambda a: a.pop('batch'), r"no \['batch'\] arrays"),
        (lambda a: a.pop('images_1'), 'images_1 must be uint8'),
        (
            lambda a: a.update(images_0=a['images_0'].astype(np.float32)),
            'images_0 must be uint8',
        ),
        (
            lambda a: a.update(images_0=a['images_0'][:, :4]),
            r'images_0 must be uint8 \[N, 8, 8, 3\]',
        ),
        (
            lambda a: a.update(images_0=a['images_0'][:5]),
            'images_0 has 5 images, --num_samples is 6',
        ),
        (
            lambda a: a.update(steps=np.array([], int), train_wall_s=[]),
            'no sample points',
        ),
    ],
)
def test_load_samples_names_the_file_and_the_problem(tmp_path, change, message):
  arrays = _points()
  change(arrays)
  path = _save(tmp_path / 'bad.npz', **arrays)
  with pytest.raises(ValueError, match=message) as e:
    time_to_quality.load_samples(path, num_samples=6, image_size=8)
  assert str(e.value).startswith(f'--samples {path}: ')


def test_a_file_that_is_not_npz_is_one_line(tmp_path):
  path = tmp_path / 'x.npz'
  path.write_text('not an archive')
  with pytest.raises(ValueError, match='not a readable .npz'):
    time_to_quality.load_samples(str(path), num_samples=6, image_size=8)


def test_bad_samples_exit_2_with_one_line_before_anything_is_written(tmp_path):
  arrays = _points(size=64)
  arrays.pop('batch')
  samples = _save(tmp_path / 'bad.npz', **arrays)
  out = tmp_path / 'record.json'
  result = subprocess.run(
      [
          sys.executable,
          os.path.join('benchmarks', 'time_to_quality.py'),
          '--config=' + helpers.config_flag('dcgan64'),
          f'--data_dir={tmp_path}',
          f'--samples={samples}',
          '--num_samples=6',
          f'--out={out}',
      ],
      capture_output=True,
      text=True,
      check=False,
  )
  assert result.returncode == 2, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert "no ['batch'] arrays" in last and samples in last
  assert not out.exists()
