"""Frechet distance (FID) and kernel distance (KID) between two feature sets.

Both scores compare the feature vectors of generated and real images, given by
a feature network (see `features.py`). Conventions follow the reference
implementations (TTUR / pytorch-fid for FID, Binkowski et al. 2018 and
clean-fid for KID), so that with the standard Inception network the numbers
match published ones.
"""

import numpy as np
import scipy.linalg


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of a feature set, in float64.

  Args:
    features: array [N, D] with N >= 2.

  Returns:
    (mu [D], sigma [D, D]); sigma uses the unbiased (N - 1) normalisation, as
    np.cov in the reference implementations.

  Raises:
    ValueError: if `features` is not 2-D or has fewer than 2 rows.
  """
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(
        f'statistics expects features [N >= 2, D], got shape {features.shape}.'
    )
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
  # scipy >= 1.16 deprecates the (result, error) return of sqrtm; only the
  # root is needed, finiteness is checked by the caller.
  return scipy.linalg.sqrtm(matrix)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
) -> float:
  """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

  d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

  Args:
    mu1: mean [D] of the first set.
    sigma1: covariance [D, D] of the first set.
    mu2: mean [D] of the second set.
    sigma2: covariance [D, D] of the second set.
    eps: added to the diagonals when the product is singular, i.e. when its
      square root comes out non-finite (fewer samples than dimensions).

  Returns:
    The distance as a Python float.

  Raises:
    ValueError: on mismatched shapes, or if the square root keeps an imaginary
      part too large to be rounding error.
  """
  mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(
        'Statistics differ in shape: '
        f'mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs '
        f'{sigma2.shape}.'
    )
  if sigma1.shape != (mu1.shape[0], mu1.shape[0]):
    raise ValueError(
        f'sigma must be [D, D] for mu [D]; got {sigma1.shape} for {mu1.shape}.'
    )
  diff = mu1 - mu2
  covmean = _sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    # A product of two PSD matrices has a real, non-negative spectrum; a small
    # imaginary part is rounding error, a large one a broken input.
    max_imag = np.max(np.abs(np.diagonal(covmean).imag))
    if max_imag > 1e-3:
      raise ValueError(
          f'sqrtm(sigma1 @ sigma2) has imaginary component {max_imag:g}; '
          'are the covariances positive semi-definite?'
      )
    covmean = covmean.real
  return float(
      diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
  )


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
  """FID between two feature sets [N1, D] and [N2, D]."""
  return frechet_distance(*statistics(f1), *statistics(f2))


def kernel_inception_distance(
    f1: np.ndarray,
    f2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
  """Unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, in subsets.

  Each subset draws `subset_size` rows of each set without replacement
  (fewer when a set is smaller) and computes the unbiased estimator; the
  result is the mean and standard deviation over subsets.

  Args:
    f1: features [N1, D].
    f2: features [N2, D].
    num_subsets: number of random subsets.
    subset_size: rows per subset, clipped to min(N1, N2).
    seed: seed of the subset draws, so that a score is reproducible.

  Returns:
    (mean, std) of MMD^2 over subsets. The estimator is unbiased, so the mean
    can be slightly negative for sets from the same distribution.

  Raises:
    ValueError: on mismatched feature sizes or fewer than 2 rows.
  """
  f1 = np.asarray(f1, dtype=np.float64)
  f2 = np.asarray(f2, dtype=np.float64)
  if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
    raise ValueError(
        f'KID expects [N1, D] and [N2, D]; got {f1.shape} and {f2.shape}.'
    )
  m = min(f1.shape[0], f2.shape[0], subset_size)
  if m < 2 or num_subsets < 1:
    raise ValueError(
        f'KID needs subsets of >= 2 rows and >= 1 subset; got size {m}, '
        f'{num_subsets} subsets.'
    )
  d = f1.shape[1]
  rng = np.random.default_rng(seed)
  values = np.empty(num_subsets)
  for i in range(num_subsets):
    x = f1[rng.choice(f1.shape[0], m, replace=False)]
    y = f2[rng.choice(f2.shape[0], m, replace=False)]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    # Dropping the diagonals of k(x, x) and k(y, y) makes the estimator
    # unbiased.
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (
        m * (m - 1)
    )
    values[i] = within - 2 * kxy.sum() / (m * m)
  return float(values.mean()), float(values.std())
