"""Image sources, looked up by ``config.data.source`` in ``SOURCES``.

A source lists its images without decoding them: a ``Source`` holds one item
per image (a path, encoded bytes or an index) in a fixed order, and a function
that turns an item into something ``preprocess.load_rgb`` can decode. The
pipeline shards, shuffles, decodes and augments items, so a new source is one
loader function and one ``SOURCES`` entry.
"""

import dataclasses
import os
from typing import Any, Callable, Sequence

from absl import logging
import ml_collections

from catgan_jax.data import preprocess
from catgan_jax.data import synthetic


@dataclasses.dataclass(frozen=True)
class Source:
  """The images of one data source, in a fixed order.

  Attributes:
    description: what the images are, for logs and error messages.
    items: one entry per image (paths, encoded bytes, indices...).
    open_fn: item -> a path, bytes, array or PIL image for ``load_rgb``.
    name_fn: item -> a short name for logs (e.g. the path).
    filter_small: whether ``data.min_size`` applies (not to images that are
      generated at the training size).
  """

  description: str
  items: Sequence[Any]
  open_fn: Callable[[Any], Any] = lambda item: item
  name_fn: Callable[[Any], str] = str
  filter_small: bool = True

  def __len__(self) -> int:
    return len(self.items)


def list_image_files(folder: str) -> list[str]:
  """All image files under ``folder`` (recursive), sorted for a stable order.

  Hidden files (such as macOS ``._name.jpg`` resource forks) are ignored.
  """
  paths = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = [d for d in dirs if not d.startswith('.')]
    for name in files:
      if not name.startswith('.') and name.lower().endswith(
          preprocess.IMAGE_EXTENSIONS
      ):
        paths.append(os.path.join(root, name))
  return sorted(paths)


def read_manifest(manifest: str, folder: str = '') -> list[str]:
  """Reads a manifest: one image path per line, relative ones taken from ``folder``.

  Blank lines and lines starting with '#' are ignored. Relative paths are
  resolved against ``folder``, or against the manifest's own folder when
  ``folder`` is empty.
  """
  base = folder or os.path.dirname(os.path.abspath(manifest))
  paths = []
  with open(manifest) as f:
    for line in f:
      line = line.strip()
      if line and not line.startswith('#'):
        paths.append(line if os.path.isabs(line) else os.path.join(base, line))
  return paths


def load_synthetic(config: ml_collections.ConfigDict) -> Source:
  """Procedurally drawn cat faces, drawn lazily at the pipeline's cache size."""
  data = config.data
  side = preprocess.cache_side(data.image_size, data.get('rrc_min_scale', 1.0))
  # A fixed data set seed: runs with different config.seed see the same faces.
  data_seed = data.get('synthetic_seed', 0)
  n = data.num_synthetic
  logging.info(
      'Source synthetic: %d procedurally drawn cat faces at %dpx.', n, side
  )
  return Source(
      description=f'synthetic cat faces (n={n})',
      items=range(n),
      open_fn=lambda i: synthetic.draw_cat_face(side, data_seed, int(i)),
      name_fn=lambda i: f'synthetic[{i}]',
      filter_small=False,
  )


def load_folder(config: ml_collections.ConfigDict) -> Source:
  """Every image under ``data.dir``, or the files listed in ``data.manifest``."""
  folder = config.data.dir
  manifest = config.data.get('manifest', '')
  if manifest:
    paths = read_manifest(manifest, folder)
    logging.info(
        'Source folder: %d images listed in manifest %s.', len(paths), manifest
    )
    description = f'manifest {manifest!r} (data.dir={folder!r})'
  else:
    paths = list_image_files(folder)
    logging.info(
        'Source folder: %d image files found under %s.', len(paths), folder
    )
    description = f'folder data.dir={folder!r}'
  if not paths:
    exts = ', '.join(preprocess.IMAGE_EXTENSIONS)
    raise ValueError(f'{description}: no image files ({exts}) found')
  return Source(description=description, items=paths)


def cat_dataset_bucket(root: str, image_size: int) -> str:
  """The smallest bucket folder ``root/N`` of ``prepare_cat`` with N >= image_size."""
  sizes = sorted(
      int(name)
      for name in os.listdir(root)
      if name.isdigit() and os.path.isdir(os.path.join(root, name))
  )
  for size in sizes:
    if size >= image_size:
      return os.path.join(root, str(size))
  raise ValueError(
      f'data.dir={root!r}: no face bucket of at least data.image_size='
      f'{image_size} (found {sizes or "none"}); run '
      f'`python -m catgan_jax.data.prepare_cat INPUT {root}`'
  )


def load_cat_dataset(config: ml_collections.ConfigDict) -> Source:
  """Aligned CAT data set faces written by ``prepare_cat`` under ``data.dir``."""
  folder = cat_dataset_bucket(config.data.dir, config.data.image_size)
  paths = list_image_files(folder)
  logging.info('Source cat_dataset: %d faces in %s.', len(paths), folder)
  if not paths:
    raise ValueError(f'cat_dataset bucket {folder!r} holds no images')
  return Source(description=f'cat_dataset {folder!r}', items=paths)


def load_tfds(config: ml_collections.ConfigDict) -> Source:
  """Images of a TFDS data set (``data.tfds_name``), optionally only some labels.

  The data set must already be prepared in ``data.tfds_data_dir`` (for example
  with ``tfds build NAME --data_dir=DIR [--manual_dir=...]``), so that training
  runs offline; ``data.tfds_download=True`` prepares it first. The encoded
  images are kept in memory and decoded by the pipeline like files.

  ``data.tfds_labels`` keeps examples whose ``data.tfds_label_key`` feature
  (default 'label') is one of them: e.g. ``cats_vs_dogs`` with labels (0,), or
  ``oxford_iiit_pet`` with label key 'species' and labels (0,) for the cats.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  data = config.data
  image_key = data.get('tfds_image_key', 'image')
  label_key = data.get('tfds_label_key', 'label')
  labels = tuple(int(label) for label in data.tfds_labels)
  description = f'tfds {data.tfds_name!r} split {data.tfds_split!r}' + (
      f' {label_key} in {labels}' if labels else ''
  )
  try:
    builder = tfds.builder(data.tfds_name, data_dir=data.tfds_data_dir or None)
    if data.get('tfds_download', False):
      builder.download_and_prepare()
    ds = builder.as_dataset(
        split=data.tfds_split,
        shuffle_files=False,
        decoders={image_key: tfds.decode.SkipDecoding()},
    )
  except (
      Exception
  ) as e:  # tfds raises many types for a missing or unknown data set.
    raise ValueError(
        f'{description}: cannot be read from data.tfds_data_dir='
        f'{data.tfds_data_dir!r} ({type(e).__name__}: {e}); prepare it with '
        f'`tfds build {data.tfds_name} --data_dir=DIR` or set data.tfds_download=True'
    ) from e
  if labels:
    ds = ds.filter(lambda ex: tf.reduce_any(tf.equal(ex[label_key], labels)))
  ds = ds.map(lambda ex: ex[image_key])
  items = list(ds.as_numpy_iterator())
  logging.info('Source tfds: %d images in %s.', len(items), description)
  if not items:
    raise ValueError(f'{description}: no images')
  return Source(
      description=description,
      items=items,
      name_fn=lambda item: f'{data.tfds_name} image ({len(item)} bytes)',
  )


# data.source -> loader(config) -> Source.
SOURCES: dict[str, Callable[[ml_collections.ConfigDict], Source]] = {
    'synthetic': load_synthetic,
    'folder': load_folder,
    'tfds': load_tfds,
    'cat_dataset': load_cat_dataset,
}


def load_source(config: ml_collections.ConfigDict) -> Source:
  """Returns the ``Source`` named by ``config.data.source``."""
  name = config.data.source
  if name not in SOURCES:
    raise ValueError(
        f'data.source={name!r} is unknown; valid: {sorted(SOURCES)}'
    )
  return SOURCES[name](config)


def shard(source: Source, process_index: int, process_count: int) -> Source:
  """The disjoint part of ``source`` read by one process (every count-th item)."""
  items = source.items[process_index::process_count]
  return dataclasses.replace(source, items=items)


def validate_data_config(config: ml_collections.ConfigDict) -> None:
  """Cheap checks of ``config.data`` before any work.

  Args:
    config: the full run configuration.

  Raises:
    ValueError: one line naming the offending field and its value.
  """
  data = config.data
  if data.source not in SOURCES:
    raise ValueError(
        f'data.source={data.source!r} is unknown; valid: ' f'{sorted(SOURCES)}'
    )
  if not isinstance(data.image_size, int) or data.image_size < 8:
    raise ValueError(
        f'data.image_size={data.image_size!r} must be an integer >= 8'
    )
  if data.crop not in preprocess.CROPS:
    raise ValueError(
        f'data.crop={data.crop!r} must be one of {preprocess.CROPS}'
    )
  if data.min_size < 0:
    raise ValueError(f'data.min_size={data.min_size!r} must be >= 0')
  rrc = data.get('rrc_min_scale', 1.0)
  if not 0.0 < rrc <= 1.0:
    raise ValueError(f'data.rrc_min_scale={rrc!r} must be in (0, 1]')
  background = tuple(data.get('background', (255, 255, 255)))
  if len(background) != 3 or not all(0 <= int(c) <= 255 for c in background):
    raise ValueError(
        f'data.background={background!r} must be 3 integers in [0, 255]'
    )
  if data.source == 'synthetic' and data.num_synthetic < 1:
    raise ValueError(f'data.num_synthetic={data.num_synthetic!r} must be >= 1')
  if data.source in ('folder', 'cat_dataset'):
    if not data.dir:
      raise ValueError(
          f"data.dir='' must name a folder of images for "
          f'data.source={data.source!r}'
      )
    if not os.path.isdir(data.dir):
      raise ValueError(
          f'data.dir={data.dir!r} does not exist or is not a directory'
      )
  if data.source == 'tfds' and not data.get('tfds_name', ''):
    raise ValueError(
        "data.tfds_name='' must name a TFDS data set for data.source='tfds'"
    )
  if data.get('ada_target', 0.0) > 0:
    if data.get('augment', 'diffaugment') != 'ada' and not data.get(
        'diffaugment', ''
    ):
      raise ValueError(
          f'data.ada_target={data.ada_target!r} adapts the '
          "probability of data.diffaugment='', which is off; "
          'name a policy (e.g. data.diffaugment=translation) or set '
          "data.augment='ada'"
      )
    for field in ('ada_interval', 'ada_kimg'):
      if not data[field] > 0:
        raise ValueError(f'data.{field}={data[field]!r} must be positive')
  manifest = data.get('manifest', '')
  if manifest and not os.path.isfile(manifest):
    raise ValueError(f'data.manifest={manifest!r} does not exist')
