"""Improved precision and recall on hand-built feature sets."""

import numpy as np
import pytest

from catgan_jax.evaluation import evaluate
from catgan_jax.evaluation import precision_recall


def _cluster(center: float, n: int = 200, d: int = 8, seed: int = 0):
  rng = np.random.default_rng(seed)
  return center + rng.normal(size=(n, d)).astype(np.float32)


def test_identical_sets_are_one_one():
  x = _cluster(0.0)
  assert precision_recall.precision_recall(x, x.copy()) == (1.0, 1.0)


def test_disjoint_clusters_are_zero_zero():
  real, fake = _cluster(0.0), _cluster(100.0, seed=1)
  assert precision_recall.precision_recall(real, fake) == (0.0, 0.0)


def test_subset_has_full_precision_and_partial_recall():
  # Generated images cover one of the two real modes only.
  real = np.concatenate([_cluster(0.0), _cluster(50.0, seed=1)])
  fake = real[:200]
  precision, recall = precision_recall.precision_recall(real, fake)
  assert precision == 1.0
  assert recall == pytest.approx(0.5, abs=0.02)


def test_radii_are_kth_neighbour_distances():
  # Points on a line at 0, 1, 3, 6: distances to the 2nd neighbour.
  x = np.array([[0.0], [1.0], [3.0], [6.0]], np.float32)
  np.testing.assert_allclose(
      precision_recall.manifold_radii(x, k=2), [3.0, 2.0, 3.0, 5.0], atol=1e-5
  )


def test_ball_boundary_counts_as_inside():
  # The reference tests dist <= radius.
  manifold = np.array([[0.0], [2.0]], np.float32)
  radii = np.array([1.0, 0.5], np.float32)
  probes = np.array([[1.0], [2.6], [-1.5]], np.float32)
  assert precision_recall.coverage_fraction(
      probes, manifold, radii
  ) == pytest.approx(1 / 3)


def test_bad_k_is_refused():
  with pytest.raises(ValueError, match='k=5'):
    precision_recall.manifold_radii(np.zeros((5, 2)), k=5)


def test_evaluate_adds_precision_and_recall():
  real = _cluster(0.0, n=64)
  scores = evaluate(
      lambda n: np.zeros((n, 2, 2, 3)),
      real,
      # Every generated image has the same features: a collapsed generator.
      lambda images: np.zeros((images.shape[0], real.shape[1]), np.float32),
      num_samples=32,
      batch_size=16,
      kid_subsets=2,
      kid_subset_size=16,
      pr_k=3,
  )
  assert scores['precision'] == 1.0  # The mean of a cluster is inside it.
  assert scores['recall'] < 0.1
