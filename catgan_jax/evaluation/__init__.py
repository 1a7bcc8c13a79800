"""Sample quality: FID, KID and IS of a generator.

Typical use (the trainer does this every `eval.every_steps`):

  network_fn = features.get_network_fn(config.eval.features,
                                       config.eval.features_path)
  feature_fn = features.get_feature_fn(config.eval.features,
                                       config.eval.features_path)
  ref = reference.reference_features(real_batches, feature_fn, path)
  scores = evaluate(sample_fn, ref, network_fn, num_samples=10_000,
                    batch_size=100, kid_subsets=100, kid_subset_size=1000)

FID and KID compare the generated images' features with the reference
features; the Inception Score (`inception_score.py`) needs no reference and
is computed from the class probabilities of the same forward pass.

Generated images are scored as a user would save them: quantised to uint8,
round((x + 1) * 127.5) clipped to [0, 255] (`sampling.to_uint8`), and mapped
back to [-1, 1] exactly as the real images are, before the feature network.
pytorch-fid scores saved image files, and the real images are uint8 too, so
without this the generator alone would be scored on continuous values.
KID uses 100 subsets of up to 1000 rows, clean-fid's ``kernel_distance``
defaults; with fewer samples than that, a subset is all of the smaller set.
"""

from collections.abc import Callable

from absl import logging
import numpy as np

from catgan_jax import sampling
from catgan_jax.evaluation import fid
from catgan_jax.evaluation import inception_score
from catgan_jax.evaluation import precision_recall


def quantize(images: np.ndarray) -> np.ndarray:
  """Float images in [-1, 1] as saved to 8-bit files and read back.

  Args:
    images: float NHWC in [-1, 1] (values outside are clipped).

  Returns:
    float32 images on the 256 levels k / 127.5 - 1 that uint8 real images
    are mapped to.
  """
  return sampling.to_uint8(np.asarray(images)).astype(np.float32) / 127.5 - 1.0


def generated_features(
    sample_fn: Callable[[int], np.ndarray],
    feature_fn: Callable[[np.ndarray], np.ndarray | tuple[np.ndarray, ...]],
    num_samples: int,
    batch_size: int,
) -> np.ndarray | tuple[np.ndarray, ...]:
  """Features of `num_samples` generated images, drawn `batch_size` at a time.

  Args:
    sample_fn: n -> n generated images, float NHWC in [-1, 1].
    feature_fn: images -> features [N, D], or a tuple of per-image arrays
      (`features.Outputs`: features and class probabilities).
    num_samples: total number of images.
    batch_size: images per call of sample_fn.

  Returns:
    Features [num_samples, D] of the images quantised to 8 bits (`quantize`),
    or, for a feature_fn giving tuples, the tuple of each array over all
    images (of the same type).
  """
  if num_samples < 2 or batch_size < 1:
    raise ValueError(
        f'Need num_samples >= 2 and batch_size >= 1, got {num_samples} and '
        f'{batch_size}.'
    )
  chunks, done = [], 0
  while done < num_samples:
    n = min(batch_size, num_samples - done)
    images = np.asarray(sample_fn(n))
    if images.shape[0] != n:
      raise ValueError(f'sample_fn({n}) returned {images.shape[0]} images.')
    chunks.append(feature_fn(quantize(images)))
    done += n
  if isinstance(chunks[0], tuple):
    return type(chunks[0])(*map(np.concatenate, zip(*chunks)))
  return np.concatenate(chunks)


def evaluate(
    sample_fn: Callable[[int], np.ndarray],
    ref_features: np.ndarray,
    feature_fn: Callable[[np.ndarray], np.ndarray],
    num_samples: int,
    batch_size: int,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    pr_k: int = 0,
    ref_radii: np.ndarray | None = None,
) -> dict[str, float]:
  """Scores a generator against the reference features.

  Args:
    sample_fn: n -> n generated images, float NHWC in [-1, 1].
    ref_features: features of real images [M, D].
    feature_fn: the feature function `ref_features` was computed with, or
      its `features.get_network_fn` form (features and class probabilities
      of one pass), which adds the Inception Score.
    num_samples: number of generated images.
    batch_size: images per call of sample_fn.
    kid_subsets: number of KID subsets (clean-fid: 100).
    kid_subset_size: rows per KID subset (clipped to the smaller set, as
      clean-fid's max_subset_size).
    is_splits: number of Inception Score splits (improved-gan: 10).
    pr_k: neighbourhood size of improved precision and recall (3, as
      stylegan2-ada's pr50k3); 0 = not computed.
    ref_radii: `precision_recall.manifold_radii(ref_features, pr_k)`, when
      already computed.

  Returns:
    {'fid': ..., 'kid': ..., 'kid_std': ...}, 'is_mean', 'is_std' when
    feature_fn gives class probabilities, and 'precision', 'recall' when
    pr_k > 0.
  """
  gen = generated_features(sample_fn, feature_fn, num_samples, batch_size)
  probs = None
  if isinstance(gen, tuple):
    gen, probs = gen
  if gen.shape[1] != ref_features.shape[1]:
    raise ValueError(
        f'Generated features have {gen.shape[1]} dimensions, reference '
        f'features {ref_features.shape[1]}: different feature networks?'
    )
  fid_value = fid.frechet_distance(
      *fid.statistics(gen), *fid.statistics(ref_features)
  )
  kid, kid_std = fid.kernel_inception_distance(
      gen, ref_features, kid_subsets, kid_subset_size
  )
  logging.info(
      'FID %.3f, KID %.5f +- %.5f (%d samples, %d reference).',
      fid_value,
      kid,
      kid_std,
      gen.shape[0],
      ref_features.shape[0],
  )
  scores = {'fid': fid_value, 'kid': kid, 'kid_std': kid_std}
  if probs is not None:
    is_mean, is_std = inception_score.inception_score(probs, is_splits)
    logging.info('IS %.3f +- %.3f (%d splits).', is_mean, is_std, is_splits)
    scores.update(is_mean=is_mean, is_std=is_std)
  if pr_k > 0:
    precision, recall = precision_recall.precision_recall(
        ref_features, gen, pr_k, ref_radii
    )
    logging.info('Precision %.3f, recall %.3f (k=%d).', precision, recall, pr_k)
    scores.update(precision=precision, recall=recall)
  return scores
