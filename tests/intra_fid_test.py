"""Scores of conditional generators: labels by class frequency, intra-FID."""

import numpy as np
import pytest

from catgan_jax import config_lib
from catgan_jax import evaluate
from catgan_jax.evaluation import features
from catgan_jax.evaluation import intra_fid
from catgan_jax.evaluation import scorer
import helpers


def _on_grid(levels: np.ndarray) -> np.ndarray:
  """uint8 levels as float images [N, 1, 1, 2] that quantise to themselves."""
  return (levels / 127.5 - 1.0).reshape(-1, 1, 1, 2).astype(np.float32)


def _flat(images):
  return np.asarray(images, np.float64).reshape(len(images), -1)


def test_intra_fid_of_two_hand_built_classes():
  rng = np.random.default_rng(0)
  real = {c: rng.integers(40, 200, (50, 2)) for c in (0, 1)}
  # Each class's fakes are its real images shifted: its FID is the squared
  # shift (equal covariances), 10 levels in x for class 0, 30 in y for 1.
  shift = {0: np.array([10, 0]), 1: np.array([0, 30])}
  calls = []

  def sample_class(n, c):
    calls.append((n, c))
    return _on_grid(real[c][:n] + shift[c])

  ref_labels = np.array([0, 1] * 50)
  ref = np.empty((100, 2))
  for c in (0, 1):
    ref[ref_labels == c] = _flat(_on_grid(real[c]))
  value, per_class = intra_fid.intra_fid(
      sample_class, ref, ref_labels, 2, _flat, 50, batch_size=50
  )
  want = [(10 / 127.5) ** 2, (30 / 127.5) ** 2]
  np.testing.assert_allclose(per_class, want, rtol=1e-6)
  assert value == pytest.approx(np.mean(want), rel=1e-6)
  assert calls == [(50, 0), (50, 1)]
  # A class without two real images has no FID.
  with pytest.raises(ValueError, match='class 2 has 0 reference'):
    intra_fid.intra_fid(sample_class, ref, ref_labels, 3, _flat, 50, 50)


def test_labels_are_drawn_by_class_frequency():
  freq = intra_fid.class_frequencies(np.array([0, 0, 0, 2]), 3)
  np.testing.assert_allclose(freq, [0.75, 0.0, 0.25])
  labels = intra_fid.draw_labels(freq, 4000, seed=5)
  assert labels.dtype == np.int32
  np.testing.assert_allclose(
      np.bincount(labels, minlength=3) / 4000, freq, atol=0.03
  )
  np.testing.assert_array_equal(labels, intra_fid.draw_labels(freq, 4000, 5))


def _fake_features(monkeypatch):
  """A feature network of the mean colour, so a Scorer runs in a moment."""
  mean_colour = lambda images: np.asarray(images, np.float32).mean((1, 2))
  monkeypatch.setattr(features, 'get_feature_fn', lambda *a, **k: mean_colour)
  monkeypatch.setattr(features, 'get_network_fn', lambda *a, **k: mean_colour)


def _cond_config(tmp_path, **overrides):
  return helpers.config_with(
      **{
          'data.num_classes': 4,
          'data.num_synthetic': 40,
          'model.g_cond': 'cbn',
          'model.d_cond': 'projection',
          'eval.num_samples': 40,
          'eval.batch_size': 8,
          'eval.kid_subset_size': 10,
          'eval.kid_subsets': 2,
          'eval.pr_k': 0,
          'eval.per_class': True,
          'eval.cache_dir': str(tmp_path / 'cache'),
          **overrides,
      }
  )


def test_conditional_scorer_draws_labels_and_scores_each_class(
    tmp_path, monkeypatch
):
  _fake_features(monkeypatch)
  config = _cond_config(tmp_path)
  run_scorer = scorer.Scorer(config)
  # The reference's labels are those of its images, in the pipeline's order.
  batches = scorer.real_batches(config, 8)
  want_labels = np.concatenate([next(batches)[1] for _ in range(5)])
  np.testing.assert_array_equal(run_scorer.reference_labels, want_labels)
  freq = np.bincount(want_labels, minlength=4) / 40
  np.testing.assert_allclose(run_scorer.class_frequencies, freq)
  # From the cache, the labels are read again in the same order.
  again = scorer.Scorer(config)
  assert (tmp_path / 'cache').is_dir()
  np.testing.assert_array_equal(again.reference_labels, want_labels)

  seen = []
  means = np.array([[-0.5] * 3, [0.0] * 3, [0.5] * 3, [0.9] * 3])

  def generate(z, y):
    seen.append(np.asarray(y))
    noise = np.asarray(z)[:, :3, None, None] * 0.05
    return np.broadcast_to(
        means[np.asarray(y)][:, None, None, :] + noise.transpose(0, 2, 3, 1),
        (len(y), 4, 4, 3),
    )

  scores = run_scorer.score(generate)
  drawn = np.concatenate(seen[:5])
  np.testing.assert_array_equal(
      drawn, intra_fid.draw_labels(freq, 40, config.seed + 3)
  )
  # Then 40 // 4 = 10 images of each class in turn, for intra-FID.
  per_class = np.concatenate(seen[5:])
  np.testing.assert_array_equal(per_class, np.repeat(np.arange(4), 10))
  class_fids = [scores[f'fid_class_{c}'] for c in range(4)]
  assert scores['intra_fid'] == pytest.approx(np.mean(class_fids))
  assert np.isfinite(scores['fid']) and scores['intra_fid'] > 0


def test_per_class_needs_a_conditional_run(tmp_path):
  config = helpers.config_with(**{'eval.per_class': True})
  with pytest.raises(config_lib.ConfigError, match='eval.per_class=True'):
    config_lib.validate(config)
  row = {'step': 1, 'fid': 3.0, 'kid': 0.1, 'kid_std': 0.0, 'intra_fid': 7.5}
  assert 'intra-FID' in evaluate.format_table([row])
  assert '7.500' in evaluate.format_table([row])
