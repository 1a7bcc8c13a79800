"""Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).

Each feature set defines a manifold: the union of balls around its points,
each ball's radius the distance to the point's k-th nearest neighbour in the
same set (the point itself not counted). Precision is the fraction of
generated features inside the real manifold (how many samples look real),
recall the fraction of real features inside the generated manifold (how much
of the data the generator covers).

Follows stylegan2-ada-pytorch's `metrics/precision_recall.py` (`pr50k3`:
k = 3, a probe is inside when its distance to some manifold point is at most
that point's radius, `dist <= kth`, distances by `cdist`), which matches the
original implementation by the paper's authors. Deliberate differences: the
features are those of the run's FID network (one feature pass gives FID,
KID, IS, precision and recall) instead of VGG16's fc2 features, and the
distances are computed in float32 instead of float16.
"""

import numpy as np

# stylegan2-ada-pytorch's pr50k3: nhood_size=3.
DEFAULT_K = 3
# Rows of the distance matrix computed at once (memory: rows x N floats).
_ROW_BATCH = 1024


def _pairwise_distances(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
  """Euclidean distances [len(rows), len(cols)], as torch.cdist."""
  sq = (
      np.sum(rows * rows, axis=1)[:, None]
      - 2.0 * rows @ cols.T
      + np.sum(cols * cols, axis=1)[None, :]
  )
  return np.sqrt(np.maximum(sq, 0.0))


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
  features = np.asarray(features, dtype=np.float32)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(
        f'{name} features must be [N >= 2, D]; got shape {features.shape}.'
    )
  return features


def manifold_radii(features: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
  """Distance of each feature to its k-th nearest neighbour in the same set.

  Args:
    features: [N, D] with N > k.
    k: neighbourhood size (the point itself is not one of its k).

  Returns:
    Radii [N] (float32).

  Raises:
    ValueError: on a malformed set or k outside [1, N - 1].
  """
  features = _as_features(features, 'Manifold')
  n = features.shape[0]
  if not 1 <= k < n:
    raise ValueError(f'k={k} nearest neighbours need 1 <= k < N={n} points.')
  radii = []
  for start in range(0, n, _ROW_BATCH):
    dist = _pairwise_distances(features[start : start + _ROW_BATCH], features)
    # kthvalue(k + 1): the smallest distance is the point's own, 0.
    radii.append(np.partition(dist, k, axis=1)[:, k])
  return np.concatenate(radii)


def coverage_fraction(
    probes: np.ndarray, manifold: np.ndarray, radii: np.ndarray
) -> float:
  """Fraction of `probes` inside some ball (`manifold[i]`, `radii[i]`)."""
  probes = _as_features(probes, 'Probe')
  manifold = _as_features(manifold, 'Manifold')
  if probes.shape[1] != manifold.shape[1] or radii.shape != (
      manifold.shape[0],
  ):
    raise ValueError(
        f'Probes {probes.shape}, manifold {manifold.shape} and radii '
        f'{radii.shape} do not fit together.'
    )
  inside = []
  for start in range(0, probes.shape[0], _ROW_BATCH):
    dist = _pairwise_distances(probes[start : start + _ROW_BATCH], manifold)
    inside.append(np.any(dist <= radii[None, :], axis=1))
  return float(np.mean(np.concatenate(inside)))


def precision_recall(
    real: np.ndarray,
    generated: np.ndarray,
    k: int = DEFAULT_K,
    real_radii: np.ndarray | None = None,
) -> tuple[float, float]:
  """Improved precision and recall of generated features against real ones.

  Args:
    real: real features [N, D].
    generated: generated features [M, D].
    k: neighbourhood size (3, as pr50k3).
    real_radii: `manifold_radii(real, k)` when already computed (the real
      set is the same at every evaluation of a run).

  Returns:
    (precision, recall), each in [0, 1].
  """
  real = _as_features(real, 'Real')
  generated = _as_features(generated, 'Generated')
  if real_radii is None:
    real_radii = manifold_radii(real, k)
  precision = coverage_fraction(generated, real, real_radii)
  recall = coverage_fraction(real, generated, manifold_radii(generated, k))
  return precision, recall
