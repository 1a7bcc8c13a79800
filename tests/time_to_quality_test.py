"""Tests of benchmarks/time_to_quality.py's scoring of saved samples."""

import argparse
import os
import subprocess
import sys
import time

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


class _SlowScorer:
  """Stands in for MultiScorer: records what it sees, takes 0.3 s."""

  def __init__(self):
    self.images = []

  def score(self, generate):
    self.images.append(np.asarray(generate(np.zeros((4, 16), np.float32))))
    time.sleep(0.3)
    return {'fid': float(len(self.images))}


def test_training_is_one_continuous_run_scored_at_each_point(
    tmp_path, monkeypatch
):
  from catgan_jax import train  # pylint: disable=g-import-not-at-top

  config = helpers.config_with(log_every_steps=1000, sample_every_steps=1000)
  calls = []
  real = train.train_and_evaluate

  def counted(*args, **kwargs):
    calls.append(kwargs.get('on_step') is not None)
    return real(*args, **kwargs)

  monkeypatch.setattr(train, 'train_and_evaluate', counted)
  flops, generator = time_to_quality._step_flops(config)
  args = argparse.Namespace(
      config='configs/test.py',
      workdir=str(tmp_path / 'run'),
      budget_min=0.03,
      points=3,
  )
  scorer = _SlowScorer()
  points = time_to_quality._train_and_score(
      config, args, scorer, flops, generator
  )
  assert calls == [True]  # One trainer call: one start-up, one compile.
  budget_s = 0.03 * 60
  steps = [p['steps'] for p in points]
  assert steps == sorted(set(steps)) and steps[0] > 0
  for k, point in enumerate(points, start=1):
    # At the first step past its fraction of the budget; the 0.3 s of each
    # earlier score is not training time.
    assert budget_s * k / 3 <= point['train_wall_s'] < budget_s * k / 3 + 0.5
    assert point['fid'] == k and point['train_flops'] == flops * point['steps']
  assert all(i.shape == (4, 16, 16, 3) for i in scorer.images)
  assert np.abs(scorer.images[-1]).max() <= 1
  # The run stopped after the last point, with its checkpoint.
  assert str(steps[-1]) in os.listdir(tmp_path / 'run' / 'checkpoints')
