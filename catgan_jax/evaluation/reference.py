"""Features of the real images, computed once per dataset and cached on disk.

Scoring a run compares generated images with the training set; the training
set's side never changes, so its features are stored as an `.npz` whose name
encodes what they depend on: dataset identity, resolution, feature backend and
image count. Features (not only mean and covariance) are kept because KID
needs them.
"""

from collections.abc import Callable, Iterable
import hashlib
import os
import re
import tempfile

from absl import logging
import numpy as np
import tqdm

from catgan_jax import workdir as workdir_lib


def default_cache_dir() -> str:
  """`$XDG_CACHE_HOME/catgan_jax/reference` (or `~/.cache/...`)."""
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache'
  )
  return os.path.join(cache, 'catgan_jax', 'reference')


def cache_path(
    cache_dir: str, dataset: str, resolution: int, backend: str, count: int
) -> str:
  """The cache file of one (dataset, resolution, backend, count).

  Args:
    cache_dir: directory of the cache ('' = default_cache_dir()).
    dataset: identity of the dataset, e.g. its source and directory; any
      string (it is hashed, with a readable prefix kept).
    resolution: side of the images the features were computed from.
    backend: feature network name.
    count: number of images (0 = all).

  Returns:
    A path `<cache_dir>/<name>-<hash>.npz`.
  """
  key = f'{dataset}|{resolution}|{backend}|{count}'
  digest = hashlib.sha256(key.encode()).hexdigest()[:12]
  readable = re.sub(r'[^A-Za-z0-9_.-]+', '_', dataset).strip('_')[-40:]
  name = f'{readable}-{resolution}px-{backend}-n{count}-{digest}.npz'
  return os.path.join(cache_dir or default_cache_dir(), name)


def reference_features(
    images_iter: Iterable[np.ndarray],
    feature_fn: Callable[[np.ndarray], np.ndarray],
    cache_path: str,  # pylint: disable=redefined-outer-name
    max_images: int = 0,
) -> np.ndarray:
  """Features of a dataset, read from `cache_path` or computed and saved.

  Args:
    images_iter: batches of real images, float NHWC in [-1, 1]. Not touched
      when the cache exists.
    feature_fn: images -> features [N, D].
    cache_path: the `.npz` file (see `cache_path()`).
    max_images: stop after this many images (0 = the whole iterator).

  Returns:
    Features [N, D], float32.

  Raises:
    ValueError: if the iterator yields no image.
    cli.UserError: the cache folder cannot be written (checked before
      any feature is computed).
  """
  if os.path.isfile(cache_path):
    with np.load(cache_path) as data:
      features = data['features']
    logging.info(
        'Reference features %s loaded from %s.', features.shape, cache_path
    )
    return features
  # The folder is probed before the long feature pass, as every path a
  # command writes is: an unwritable cache is one line now, not a
  # traceback after minutes of work.
  workdir_lib.check_writable(
      [
          workdir_lib.Output(
              os.path.dirname(os.path.abspath(cache_path)),
              'dir',
              'eval.cache_dir',
          )
      ]
  )
  logging.info(
      'Computing the reference features of %s images (once: they '
      'are cached in %s).',
      max_images or 'all',
      cache_path,
  )
  chunks, total = [], 0
  with tqdm.tqdm(
      total=max_images or None, unit='img', desc='reference', disable=None
  ) as bar:
    for images in images_iter:
      images = np.asarray(images)
      if max_images:
        images = images[: max_images - total]
      if images.shape[0]:
        chunks.append(feature_fn(images))
        total += images.shape[0]
        bar.update(images.shape[0])
      if max_images and total >= max_images:
        break
  if not chunks:
    raise ValueError('No reference images: the dataset iterator is empty.')
  features = np.concatenate(chunks).astype(np.float32)
  directory = os.path.dirname(cache_path) or '.'
  os.makedirs(directory, exist_ok=True)
  # Write then rename, so that a killed run never leaves a truncated cache.
  fd, tmp = tempfile.mkstemp(dir=directory, suffix='.npz')
  try:
    with os.fdopen(fd, 'wb') as f:
      np.savez(f, features=features)
    os.replace(tmp, cache_path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  logging.info('Reference features %s saved to %s.', features.shape, cache_path)
  return features
