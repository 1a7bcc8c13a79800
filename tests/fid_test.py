"""Tests of FID, KID, the reference-feature cache and `evaluation.evaluate`."""

import os

import numpy as np
import pytest

from catgan_jax import evaluation
from catgan_jax.evaluation import fid
from catgan_jax.evaluation import reference


def test_fid_of_a_set_with_itself_is_zero():
  feats = np.random.default_rng(0).standard_normal((500, 16))
  mu, sigma = fid.statistics(feats)
  assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_fid_of_two_diagonal_gaussians():
  # mu1 = (0, 0), sigma1 = diag(1, 4); mu2 = (1, 2), sigma2 = diag(4, 1).
  # ||mu1 - mu2||^2 = 1 + 4 = 5;
  # sum(s1 + s2 - 2 sqrt(s1 s2)) = (1 + 4 - 2*2) + (4 + 1 - 2*2) = 2.
  # FID = 7.
  value = fid.frechet_distance(
      np.zeros(2),
      np.diag([1.0, 4.0]),
      np.array([1.0, 2.0]),
      np.diag([4.0, 1.0]),
  )
  assert value == pytest.approx(7.0, abs=1e-9)


def test_fid_with_equal_full_covariances_is_the_mean_distance():
  # Tr(S + S - 2 (S S)^(1/2)) = 0 for any PSD S, so FID = ||mu1 - mu2||^2.
  a = np.random.default_rng(1).standard_normal((3, 3))
  sigma = a @ a.T + np.eye(3)
  value = fid.frechet_distance(
      np.zeros(3), sigma, np.array([3.0, 0, 4.0]), sigma
  )
  assert value == pytest.approx(25.0, abs=1e-6)


def test_fid_of_samples_approaches_the_closed_form():
  rng = np.random.default_rng(2)
  x = rng.normal(0.0, 1.0, (20_000, 2))
  y = rng.normal(0.0, 1.0, (20_000, 2)) * [2.0, 1.0] + [1.0, 0.0]
  # Closed form: mean 1 + (1 + 4 - 2*2) + (1 + 1 - 2) = 2.
  assert fid.fid_from_features(x, y) == pytest.approx(2.0, abs=0.1)


def test_fid_is_finite_for_singular_covariances():
  # Fewer samples than dimensions: both covariances are singular.
  rng = np.random.default_rng(3)
  x, y = rng.standard_normal((10, 64)), rng.standard_normal((10, 64)) + 1
  value = fid.fid_from_features(x, y)
  assert np.isfinite(value) and value > 0


def test_fid_rejects_mismatched_statistics():
  with pytest.raises(ValueError, match='differ in shape'):
    fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
  with pytest.raises(ValueError, match='N >= 2'):
    fid.statistics(np.zeros((1, 4)))


def test_kid_known_value():
  # d = 1, x = {0, 0}, y = {1, 1}, subsets = the whole sets (m = 2):
  # k(x, x') = 1, k(y, y') = (1 + 1)^3 = 8, k(x, y) = 1.
  # MMD^2 = (2*1 + 2*8) / (2*1) - 2 * (4*1) / 4 = 9 - 2 = 7, in every subset.
  mean, std = fid.kernel_inception_distance(
      np.zeros((2, 1)), np.ones((2, 1)), num_subsets=3, subset_size=2
  )
  assert mean == pytest.approx(7.0)
  assert std == pytest.approx(0.0)


def test_kid_is_zero_for_identical_sets_and_positive_for_shifted():
  rng = np.random.default_rng(4)
  feats = rng.standard_normal((400, 32))
  same, _ = fid.kernel_inception_distance(feats, feats, 10, 200)
  shifted, shifted_std = fid.kernel_inception_distance(
      feats, feats + 0.5, 10, 200
  )
  # A set against itself is not two independent samples: the cross term
  # keeps the diagonal k(x, x) that the within terms drop, so the estimate is
  # slightly negative, O(1/m). It is tiny next to a real difference.
  assert -0.05 < same <= 0
  assert shifted > 0.5 and shifted > 10 * shifted_std
  assert abs(same) < 0.05 * shifted
  # Two independent samples of one distribution: zero within the spread.
  other = rng.standard_normal((400, 32))
  indep, indep_std = fid.kernel_inception_distance(feats, other, 10, 200)
  assert abs(indep) < 3 * indep_std + 1e-3
  # Reproducible: the subsets are drawn from a fixed seed.
  assert fid.kernel_inception_distance(feats, feats + 0.5, 10, 200) == (
      shifted,
      shifted_std,
  )


def test_kid_clips_the_subset_size_and_checks_shapes():
  rng = np.random.default_rng(5)
  mean, _ = fid.kernel_inception_distance(
      rng.standard_normal((20, 4)), rng.standard_normal((30, 4)) + 2, 5, 1000
  )
  assert mean > 0
  with pytest.raises(ValueError, match='KID expects'):
    fid.kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def _flat_features(images: np.ndarray) -> np.ndarray:
  """A stand-in feature network: the mean colour and brightness spread."""
  flat = images.reshape(images.shape[0], -1, images.shape[-1])
  return np.concatenate([flat.mean(1), flat.std(1)], axis=1)


def test_reference_features_are_computed_once_and_cached(tmp_path):
  rng = np.random.default_rng(6)
  batches = [rng.uniform(-1, 1, (8, 4, 4, 3)) for _ in range(3)]
  path = reference.cache_path(str(tmp_path), 'folder:/data/cats', 64, 'toy', 20)
  assert path.startswith(str(tmp_path)) and path.endswith('.npz')
  first = reference.reference_features(
      iter(batches), _flat_features, path, max_images=20
  )
  assert first.shape == (20, 6)
  assert os.path.isfile(path)

  def must_not_run(_):
    raise AssertionError('features recomputed despite the cache')

  second = reference.reference_features(iter(batches), must_not_run, path)
  np.testing.assert_array_equal(first, second)


def test_cache_path_depends_on_every_key():
  base = ('d', 64, 'mobilenet_v2', 0)
  paths = {reference.cache_path('c', *base)}
  for i, other in enumerate(['e', 128, 'inception_v3', 100]):
    key = list(base)
    key[i] = other
    paths.add(reference.cache_path('c', *key))
  assert len(paths) == 5


def test_reference_features_of_an_empty_dataset_fail(tmp_path):
  with pytest.raises(ValueError, match='empty'):
    reference.reference_features(
        iter([]), _flat_features, os.path.join(tmp_path, 'x.npz')
    )


def test_evaluate_scores_a_generator():
  rng = np.random.default_rng(7)
  real = rng.uniform(-1, 1, (300, 4, 4, 3)).astype(np.float32)
  ref = _flat_features(real)
  calls = []

  def good_sampler(n):
    calls.append(n)
    return rng.uniform(-1, 1, (n, 4, 4, 3))

  def bad_sampler(n):
    return rng.uniform(-1, 0, (n, 4, 4, 3))

  good = evaluation.evaluate(
      good_sampler,
      ref,
      _flat_features,
      num_samples=250,
      batch_size=100,
      kid_subsets=5,
      kid_subset_size=100,
  )
  assert calls == [100, 100, 50]
  bad = evaluation.evaluate(
      bad_sampler,
      ref,
      _flat_features,
      num_samples=250,
      batch_size=100,
      kid_subsets=5,
      kid_subset_size=100,
  )
  assert set(good) == {'fid', 'kid', 'kid_std'}
  assert 0 <= good['fid'] < 0.05 < bad['fid']
  assert good['kid'] < bad['kid']


def test_evaluate_rejects_a_different_feature_network():
  ref = np.zeros((10, 5))
  with pytest.raises(ValueError, match='different feature networks'):
    evaluation.evaluate(
        lambda n: np.zeros((n, 2, 2, 3)),
        ref,
        _flat_features,
        num_samples=4,
        batch_size=2,
    )


def test_generated_images_are_scored_as_saved_uint8_images():
  """Features of G's output are those of its 8-bit quantisation."""
  rng = np.random.default_rng(8)
  images = rng.uniform(-1.2, 1.2, (10, 4, 4, 3)).astype(np.float32)
  seen = []

  def feature_fn(x):
    seen.append(np.array(x))
    return _flat_features(x)

  got = evaluation.generated_features(
      lambda n: images[:n], feature_fn, 10, batch_size=10
  )
  saved = np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8)
  as_read = saved.astype(np.float32) / 127.5 - 1
  np.testing.assert_array_equal(seen[0], as_read)
  np.testing.assert_array_equal(got, _flat_features(as_read))
  assert not np.allclose(got, _flat_features(images))


def test_kid_subsets_smaller_than_the_subset_size_are_the_whole_sets():
  """With fewer rows than kid_subset_size every subset is all of both sets
  (clean-fid's min(N1, N2, max_subset_size)): one value, std 0."""
  rng = np.random.default_rng(9)
  x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 4)) + 0.3
  mean, std = fid.kernel_inception_distance(
      x, y, num_subsets=100, subset_size=1000
  )
  k = lambda a, b: (a @ b.T / 4 + 1) ** 3
  m = 30
  within = (
      k(x, x).sum() - np.trace(k(x, x)) + k(y, y).sum() - np.trace(k(y, y))
  ) / (m * (m - 1))
  assert mean == pytest.approx(within - 2 * k(x, y).sum() / m**2, rel=1e-9)
  assert std == pytest.approx(0.0, abs=1e-12)


def test_default_kid_uses_100_subsets():
  from configs import default  # pylint: disable=g-import-not-at-top

  assert default.get_config().eval.kid_subsets == 100
