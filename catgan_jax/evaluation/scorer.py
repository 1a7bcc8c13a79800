"""FID/KID, precision/recall (against the run's training images), IS: `Scorer`.

The one owner of scoring: the trainer and `catgan_jax.evaluate` both build a
`Scorer` from a run's config. Building it loads the feature network (its
weights found, or downloaded, now) and computes the reference features of
the training set once (or reads them from the cache); `score(generate)` then
draws `eval.num_samples` latents, the same ones at every call, and scores the
images `generate` makes of them. A checkpoint therefore scores the same in
the CLI as the trainer logged for it.

A class-conditional run (data.num_classes > 0) is scored on labels drawn from
the reference images' class frequencies, the same labels at every call, and
`generate` takes them: `generate(latents, labels)`. With eval.per_class its
intra-FID is added (`intra_fid`): eval.num_samples // num_classes more
images of each class, each class against its own real images. Its reference
features are cached apart from an unconditional run's (their labels are
read again in the same order, which depends on the seed).
"""

from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from catgan_jax import cli
from catgan_jax import data as data_lib
from catgan_jax.data import sources
from catgan_jax.evaluation import evaluate
from catgan_jax.evaluation import features
from catgan_jax.evaluation import intra_fid
from catgan_jax.evaluation import precision_recall
from catgan_jax.evaluation import reference

# latents [N, z_dim] (and int32 labels [N] when conditional) -> images
# [N, H, W, C] in [-1, 1].
GenerateFn = Callable[..., np.ndarray]


def dataset_identity(config: ml_collections.ConfigDict) -> str:
  """A string naming the training images, the key of their cached features."""
  data = config.data
  if data.source == 'synthetic':
    return f'synthetic:{data.num_synthetic}:seed{data.synthetic_seed}'
  if data.source == 'tfds':
    # data.dir plays no part in a TFDS source; these fields do.
    labels = ','.join(str(int(label)) for label in data.tfds_labels)
    return (
        f'tfds:{data.tfds_name}:{data.tfds_split}:{data.tfds_data_dir}:'
        f'{data.get("tfds_label_key", "label")}={labels}:{data.crop}'
    )
  return f'{data.source}:{data.dir}:{data.manifest}:{data.crop}'


def real_batches(config: ml_collections.ConfigDict, batch_size: int):
  """(images in [-1, 1], labels or None): the training images un-augmented.

  Every image once per epoch, in an order that depends on config.seed.
  """
  ref = config.copy_and_resolve_references()
  with ref.unlocked():
    ref.data.flip = False
    ref.data.rrc_min_scale = 1.0
    if ref.data.crop == 'random':
      ref.data.crop = 'center'
  for batch in data_lib.create_input_iter(ref, local_batch_size=batch_size):
    images, labels = batch if isinstance(batch, tuple) else (batch, None)
    yield images.astype(np.float32) / 127.5 - 1.0, labels


def real_images(config: ml_collections.ConfigDict, batch_size: int):
  """The training images in [-1, 1], un-augmented, every one once per epoch."""
  for images, _ in real_batches(config, batch_size):
    yield images


def _recording_labels(batches, labels: list):
  """The images of `batches`, their labels appended to `labels`."""
  for images, batch_labels in batches:
    labels.append(batch_labels)
    yield images


def real_labels(
    config: ml_collections.ConfigDict, batch_size: int, count: int
) -> np.ndarray:
  """The labels of the first `count` images of `real_batches`."""
  labels, total = [], 0
  for _, batch_labels in real_batches(config, batch_size):
    labels.append(batch_labels)
    total += len(batch_labels)
    if total >= count:
      break
  return np.concatenate(labels)[:count]


def evaluation_latents(seed: int, z_dim: int) -> Callable[[int], jax.Array]:
  """The latents of a run's evaluations: the i-th call draws from key i.

  Every evaluation restarts the sequence, so scores differ only by G.
  """
  key = jax.random.PRNGKey(seed + 2)
  calls = iter(range(1 << 30))
  return lambda n: jax.random.normal(
      jax.random.fold_in(key, next(calls)), (n, z_dim)
  )


class Scorer:
  """Scores generators of one run; reference features computed once."""

  def __init__(self, config: ml_collections.ConfigDict):
    """Loads the feature network and the reference features.

    Args:
      config: the run config (`eval.*`, `data.*`, `seed`, `model.z_dim`).

    Raises:
      cli.UserError: the feature network or its weights are unusable.
    """
    ev = config.eval
    self._ev = ev
    self._feature_fn = features.get_feature_fn(
        ev.features, ev.features_path, batch_size=ev.batch_size
    )
    # The same network and compilation, with class probabilities (IS).
    self._network_fn = features.get_network_fn(
        ev.features, ev.features_path, batch_size=ev.batch_size
    )
    num_real = ev.num_reference or len(sources.load_source(config))
    self._num_classes = config.data.get('num_classes', 0)
    identity = dataset_identity(config)
    if self._num_classes:
      # Labelled features are in the order of this seed's pipeline.
      identity += f':labelled:seed{config.seed}'
    path = reference.cache_path(
        ev.cache_dir,
        identity,
        config.data.image_size,
        ev.features,
        num_real,
    )
    labels = []
    self.reference = reference.reference_features(
        _recording_labels(real_batches(config, ev.batch_size), labels),
        self._feature_fn,
        path,
        max_images=num_real,
    )
    self.reference_labels = None
    if self._num_classes:
      count = self.reference.shape[0]
      self.reference_labels = (
          np.concatenate(labels)[:count]
          if labels
          else real_labels(config, ev.batch_size, count)
      )
      self._check_classes(ev.get('per_class', False))
    self._seed = config.seed
    self._z_dim = config.model.z_dim
    # Configs saved before eval.pr_k existed: pr50k3's k.
    self._pr_k = ev.get('pr_k', precision_recall.DEFAULT_K)
    smallest = min(ev.num_samples, self.reference.shape[0])
    if self._pr_k and not 1 <= self._pr_k < smallest:
      raise cli.UserError(
          f'eval.pr_k={self._pr_k!r} must be 0 (off) or from 1 to '
          f'{smallest - 1} (fewer than the generated and real images)'
      )
    # The real manifold's radii: the same at every score, computed once.
    self._ref_radii = None

  def _check_classes(self, per_class: bool) -> None:
    """Refuses intra-FID with a class of fewer than 2 reference images."""
    counts = np.bincount(self.reference_labels, minlength=self._num_classes)
    self.class_frequencies = counts / counts.sum()
    self._per_class = per_class
    if per_class and counts.min() < 2:
      raise cli.UserError(
          f'eval.per_class=True: class {int(counts.argmin())} has '
          f'{int(counts.min())} reference image(s), intra-FID needs 2 or '
          'more (raise eval.num_reference, 0 = all images)'
      )

  def score(self, generate: GenerateFn) -> dict[str, float]:
    """FID, KID, KID's std and the Inception Score of `generate`'s images.

    Args:
      generate: latents [N, z_dim] -> images in [-1, 1]; for a conditional
        run (latents, int32 labels [N]) -> images.

    Returns:
      {'fid', 'kid', 'kid_std', 'is_mean', 'is_std'}, and 'precision',
      'recall' unless eval.pr_k = 0; with eval.per_class 'intra_fid' and
      each class's 'fid_class_<index>'.
    """
    if self._pr_k and self._ref_radii is None:
      self._ref_radii = precision_recall.manifold_radii(
          self.reference, self._pr_k
      )
    latents = evaluation_latents(self._seed, self._z_dim)
    sample = lambda n: np.asarray(generate(latents(n)))
    if self._num_classes:
      sample = self._sample_by_frequency(generate, latents)
    # Configs saved before eval.is_splits existed: improved-gan's 10.
    scores = evaluate(
        sample,
        self.reference,
        self._network_fn,
        self._ev.num_samples,
        self._ev.batch_size,
        self._ev.kid_subsets,
        self._ev.kid_subset_size,
        self._ev.get('is_splits', 10),
        self._pr_k,
        self._ref_radii,
    )
    if self._num_classes and self._per_class:
      value, per_class = intra_fid.intra_fid(
          lambda n, c: np.asarray(
              generate(latents(n), np.full(n, c, np.int32))
          ),
          self.reference,
          self.reference_labels,
          self._num_classes,
          self._feature_fn,
          max(self._ev.num_samples // self._num_classes, 2),
          self._ev.batch_size,
      )
      scores['intra_fid'] = value
      scores.update({f'fid_class_{c}': v for c, v in enumerate(per_class)})
    return scores

  def _sample_by_frequency(self, generate: GenerateFn, latents):
    """n -> the next n images, of labels drawn by the classes' frequencies."""
    labels = intra_fid.draw_labels(
        self.class_frequencies, self._ev.num_samples, self._seed + 3
    )
    done = [0]

    def sample(n):
      y = labels[done[0] : done[0] + n]
      done[0] += n
      return np.asarray(generate(latents(n), y))

    return sample
