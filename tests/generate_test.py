"""Tests of the generate and evaluate programs on a tiny trained run."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import helpers
from catgan_jax import evaluate
from catgan_jax import generate
from catgan_jax import inference
from catgan_jax import metrics_log
from catgan_jax import sampling
from catgan_jax import train
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HAS_MOBILENET = helpers.HAS_MOBILENET


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """configs/test.py for 4 steps, scored at the end when MobileNet is here."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = test_config.get_config()
  if _HAS_MOBILENET:
    config.eval.every_steps = 4
    config.eval.features = 'mobilenet_v2'
    config.eval.features_path = helpers.MOBILENET
    config.eval.num_samples = 16
    config.eval.batch_size = 8
    config.eval.num_reference = 32
    config.eval.kid_subsets = 2
    config.eval.kid_subset_size = 8
    config.eval.cache_dir = str(tmp_path_factory.mktemp('cache'))
  train.train_and_evaluate(config, workdir)
  return workdir


@pytest.fixture(scope='module')
def generator(run):
  """(config, sample, step) of the run's step-2 checkpoint, loaded once."""
  return inference.load_generator(run, '2')


def test_write_png_files(generator, tmp_path):
  config, sample, step = generator
  assert step == 2
  z_dim = config.model.z_dim
  out = os.path.join(tmp_path, 'pngs')
  written = generate.write_images(
      sample, z_dim, out, num=5, batch_size=2, seed=3
  )
  assert sorted(os.listdir(out)) == [f'{i:06d}.png' for i in range(5)]
  assert len(written) == 5
  with Image.open(written[0]) as image:
    assert image.size == (16, 16) and image.mode == 'RGB'
  # The files hold the generator's images for the seed's latents.
  z = generate.latents(3, 5, z_dim)
  images = generate.generate_images(sample, z, batch_size=100)
  np.testing.assert_array_equal(
      np.asarray(Image.open(written[4])), sampling.to_uint8(images[4])
  )
  # Batches do not change an image; another seed gives other images.
  np.testing.assert_allclose(
      generate.generate_images(sample, z, batch_size=2), images, atol=1e-5
  )
  others = generate.generate_images(sample, generate.latents(4, 5, z_dim))
  assert np.abs(others - images).max() > 1e-3


def test_write_grid_and_interpolation(generator, tmp_path):
  config, sample, _ = generator
  written = generate.write_images(
      sample,
      config.model.z_dim,
      str(tmp_path),
      num=6,
      grid=True,
      interpolate=4,
      paths=3,
  )
  names = sorted(os.path.basename(p) for p in written)
  assert names == ['grid.png', 'interpolation.gif', 'interpolation.png']
  with Image.open(os.path.join(tmp_path, 'grid.png')) as grid:
    # 6 images of 16 px, 3 columns x 2 rows, 2 px padding.
    assert grid.size == (3 * 18 + 2, 2 * 18 + 2)
  with Image.open(os.path.join(tmp_path, 'interpolation.png')) as strip:
    assert strip.size == (4 * 18 + 2, 3 * 18 + 2)  # 4 points x 3 paths.
  with Image.open(os.path.join(tmp_path, 'interpolation.gif')) as gif:
    # Frames 0 1 2 3 2 1 (identical neighbours would be merged).
    assert 4 <= gif.n_frames <= 6


def test_write_images_rejects_bad_counts(generator, tmp_path):
  config, sample, _ = generator
  with pytest.raises(ValueError, match='interpolate'):
    generate.write_images(
        sample, config.model.z_dim, str(tmp_path), interpolate=1
    )
  with pytest.raises(ValueError, match='num'):
    generate.write_images(sample, config.model.z_dim, str(tmp_path), num=0)


def test_generate_from_a_workdir(run, tmp_path):
  written = generate.generate(
      run, str(tmp_path), step='latest', num=2, grid=True
  )
  assert [os.path.basename(p) for p in written] == ['grid.png']
  with pytest.raises(ValueError, match='config.json'):
    generate.generate(str(tmp_path), str(tmp_path))


def test_interpolation_ends_are_the_endpoint_images():
  def sample(z):  # A "generator" that shows its latent.
    return np.tile(np.tanh(z[:, None, None, :3]), (1, 2, 2, 1))

  z = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
  frames = generate.interpolation_frames(sample, z[:2], z[2:], 5, batch_size=3)
  assert frames.shape == (2, 5, 2, 2, 3)
  np.testing.assert_allclose(frames[:, 0], sample(z[:2]), rtol=1e-5)
  np.testing.assert_allclose(frames[:, -1], sample(z[2:]), rtol=1e-5)


def test_checkpoint_steps(run):
  assert evaluate.checkpoint_steps(run) == [0, 2, 4]


@pytest.mark.skipif(not _HAS_MOBILENET, reason='shared/models is absent')
def test_evaluate_matches_the_score_logged_in_training(run):
  rows = evaluate.score_checkpoints(run, steps=[4])
  logged = [r for r in metrics_log.MetricsLog(run).read() if 'fid' in r]
  assert [r['step'] for r in logged] == [4]
  assert [r['step'] for r in rows] == [4]
  assert np.isfinite(rows[0]['fid']) and rows[0]['fid'] > 0
  # Same generator, latents, features and reference: the same numbers.
  assert rows[0]['fid'] == pytest.approx(logged[0]['fid'], rel=1e-3)
  assert rows[0]['kid'] == pytest.approx(logged[0]['kid'], rel=1e-2, abs=1e-4)
  # The Inception Score, logged beside them, from the same pass.
  assert 1.0 <= rows[0]['is_mean'] <= 1001
  assert rows[0]['is_mean'] == pytest.approx(logged[0]['is_mean'], rel=1e-3)
  assert rows[0]['is_std'] == pytest.approx(
      logged[0]['is_std'], rel=1e-2, abs=1e-4
  )
  # Precision and recall, from the same pass too.
  assert rows[0]['precision'] == logged[0]['precision']
  assert rows[0]['recall'] == logged[0]['recall']
  table = evaluate.format_table(rows).splitlines()
  assert table[0].split() == [
      'step',
      'FID',
      'KID',
      'KID',
      'std',
      'IS',
      'IS',
      'std',
      'precision',
      'recall',
  ]
  assert table[1].split()[0] == '4' and 'lowest FID' in table[1]


def test_format_table():
  rows = [
      {'step': 10, 'fid': 50.0, 'kid': 0.05, 'kid_std': 0.001},
      {'step': 20, 'fid': 40.0, 'kid': 0.04, 'kid_std': 0.002},
  ]
  lines = evaluate.format_table(rows).splitlines()
  assert lines[1].split()[:4] == ['10', '50.000', '0.05000', '0.00100']
  assert 'lowest FID' in lines[2] and 'lowest FID' not in lines[1]


@pytest.mark.parametrize('program', ['generate', 'evaluate'])
def test_command_line_reports_a_missing_run(program, tmp_path):
  # The programs as a user runs them; a workdir without a run fails fast
  # with a usage error, before any model is built.
  args = [
      sys.executable,
      '-m',
      f'catgan_jax.{program}',
      f'--workdir={tmp_path}',
  ]
  if program == 'generate':
    args.append(f'--out={tmp_path}/out')
  result = subprocess.run(
      args,
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(os.environ, JAX_PLATFORMS='cpu'),
  )
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'config.json is missing' in result.stderr
  assert 'Traceback' not in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert sorted(os.listdir(tmp_path)) == []
