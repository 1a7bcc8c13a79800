"""Scores of a class-conditional generator: labels by frequency, intra-FID.

A conditional generator is scored overall on labels drawn from the training
data's class frequencies (`draw_labels`), so that its samples are compared
with a reference set of the same class mix; a generator asked for every
class equally often would be penalised on data with uneven classes.

Intra-FID (Miyato and Koyama, ICLR 2018, Section 5; BigGAN reports it too)
is the mean over classes of the FID between a class's generated images and
that class's real images (`intra_fid`). Here every class gets the same
number of generated images, and its real images are those of the reference
set with its label.
"""

from collections.abc import Callable

from absl import logging
import numpy as np

from catgan_jax.evaluation import fid

# (n, class index) -> n generated images of that class, float NHWC in [-1, 1].
SampleClassFn = Callable[[int, int], np.ndarray]


def class_frequencies(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """The share of each class among `labels` [N]: [num_classes], sums to 1."""
  counts = np.bincount(np.asarray(labels), minlength=num_classes)
  return counts[:num_classes] / counts.sum()


def draw_labels(frequencies: np.ndarray, n: int, seed: int) -> np.ndarray:
  """`n` int32 labels drawn from `frequencies`, the same for the same seed."""
  rng = np.random.default_rng(seed)
  return rng.choice(len(frequencies), size=n, p=frequencies).astype(np.int32)


def intra_fid(
    sample_class_fn: SampleClassFn,
    ref_features: np.ndarray,
    ref_labels: np.ndarray,
    num_classes: int,
    feature_fn: Callable[[np.ndarray], np.ndarray],
    num_per_class: int,
    batch_size: int,
) -> tuple[float, list[float]]:
  """The mean of per-class FIDs, and each class's FID.

  Args:
    sample_class_fn: (n, c) -> n generated images of class c.
    ref_features: features of the real images [M, D].
    ref_labels: their classes [M].
    num_classes: the classes 0 ... num_classes - 1 scored; each needs at
      least 2 real images.
    feature_fn: the function `ref_features` were computed with.
    num_per_class: generated images per class (>= 2).
    batch_size: images per call of sample_class_fn.

  Returns:
    (intra-FID, [FID of class 0, 1, ...]).

  Raises:
    ValueError: a class with fewer than 2 real images.
  """
  # A late import: the package's __init__ imports this module's callers.
  from catgan_jax import evaluation  # pylint: disable=g-import-not-at-top

  ref_labels = np.asarray(ref_labels)
  per_class = []
  for c in range(num_classes):
    real = ref_features[ref_labels == c]
    if real.shape[0] < 2:
      raise ValueError(
          f'class {c} has {real.shape[0]} reference image(s); intra-FID '
          'needs at least 2 per class'
      )
    gen = evaluation.generated_features(
        lambda n, c=c: sample_class_fn(n, c),
        feature_fn,
        num_per_class,
        batch_size,
    )
    per_class.append(fid.fid_from_features(gen, real))
  value = float(np.mean(per_class))
  logging.info(
      'Intra-FID %.3f over %d classes (%d samples each).',
      value,
      num_classes,
      num_per_class,
  )
  return value, per_class
