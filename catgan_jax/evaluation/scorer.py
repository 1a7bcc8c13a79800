"""FID/KID of a training run's EMA generator against its training images.

The trainer builds one `Scorer` per run: the feature network is loaded and
the reference features of the training set are computed (or read from the
cache) once; each call then samples `eval.num_samples` images with fixed
noise and scores them.
"""

from typing import Any

import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from catgan_jax import data as data_lib
from catgan_jax import parallel
from catgan_jax import step as step_lib
from catgan_jax.data import sources
from catgan_jax.evaluation import evaluate
from catgan_jax.evaluation import features
from catgan_jax.evaluation import reference


def dataset_identity(config: ml_collections.ConfigDict) -> str:
  """A string naming the training images, the key of their cached features."""
  data = config.data
  if data.source == 'synthetic':
    return f'synthetic:{data.num_synthetic}:seed{data.synthetic_seed}'
  return f'{data.source}:{data.dir}:{data.manifest}:{data.crop}'


def real_images(config: ml_collections.ConfigDict, batch_size: int):
  """The training images in [-1, 1], un-augmented, every one once per epoch."""
  ref = config.copy_and_resolve_references()
  with ref.unlocked():
    ref.data.flip = False
    ref.data.rrc_min_scale = 1.0
    if ref.data.crop == 'random':
      ref.data.crop = 'center'
  for batch in data_lib.create_input_iter(ref, local_batch_size=batch_size):
    yield batch.astype(np.float32) / 127.5 - 1.0


class Scorer:
  """Scores generators of one run; reference features computed once."""

  def __init__(self, config: ml_collections.ConfigDict, generator: Any,
               mesh: Mesh):
    ev = config.eval
    self._ev = ev
    self._feature_fn = features.get_feature_fn(ev.features, ev.features_path,
                                               batch_size=ev.batch_size)
    num_real = ev.num_reference or len(sources.load_source(config))
    path = reference.cache_path(ev.cache_dir, dataset_identity(config),
                                config.data.image_size, ev.features, num_real)
    self._ref = reference.reference_features(
        real_images(config, ev.batch_size), self._feature_fn, path,
        max_images=num_real)
    self._sample = jax.jit(step_lib.make_sample_fn(generator),
                           out_shardings=parallel.replicated(mesh))
    self._rep = parallel.replicated(mesh)
    self._key = jax.random.PRNGKey(config.seed + 2)
    self._z_dim = config.model.z_dim

  def __call__(self, state: Any) -> dict[str, float]:
    """FID, KID and KID's std of `state`'s EMA generator."""
    calls = iter(range(1 << 30))

    def sample_fn(n: int) -> np.ndarray:
      # The same noise at every evaluation, so scores differ only by G.
      key = jax.random.fold_in(self._key, next(calls))
      z = jax.device_put(jax.random.normal(key, (n, self._z_dim)), self._rep)
      return parallel.fetch(self._sample(state, z))

    return evaluate(sample_fn, self._ref, self._feature_fn,
                    self._ev.num_samples, self._ev.batch_size,
                    self._ev.kid_subsets, self._ev.kid_subset_size)
