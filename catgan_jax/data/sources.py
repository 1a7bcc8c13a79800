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
      if (not name.startswith('.')
          and name.lower().endswith(preprocess.IMAGE_EXTENSIONS)):
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
  logging.info('Source synthetic: %d procedurally drawn cat faces at %dpx.', n, side)
  return Source(
      description=f'synthetic cat faces (n={n})',
      items=range(n),
      open_fn=lambda i: synthetic.draw_cat_face(side, data_seed, int(i)),
      name_fn=lambda i: f'synthetic[{i}]',
      filter_small=False)


def load_folder(config: ml_collections.ConfigDict) -> Source:
  """Every image under ``data.dir``, or the files listed in ``data.manifest``."""
  folder = config.data.dir
  manifest = config.data.get('manifest', '')
  if manifest:
    paths = read_manifest(manifest, folder)
    logging.info('Source folder: %d images listed in manifest %s.', len(paths), manifest)
    description = f'manifest {manifest!r} (data.dir={folder!r})'
  else:
    paths = list_image_files(folder)
    logging.info('Source folder: %d image files found under %s.', len(paths), folder)
    description = f'folder data.dir={folder!r}'
  if not paths:
    exts = ', '.join(preprocess.IMAGE_EXTENSIONS)
    raise ValueError(f'{description}: no image files ({exts}) found')
  return Source(description=description, items=paths)


# data.source -> loader(config) -> Source.
SOURCES: dict[str, Callable[[ml_collections.ConfigDict], Source]] = {
    'synthetic': load_synthetic,
    'folder': load_folder,
}


def load_source(config: ml_collections.ConfigDict) -> Source:
  """Returns the ``Source`` named by ``config.data.source``."""
  name = config.data.source
  if name not in SOURCES:
    raise ValueError(f'data.source={name!r} is unknown; valid: {sorted(SOURCES)}')
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
    raise ValueError(f'data.source={data.source!r} is unknown; valid: '
                     f'{sorted(SOURCES)}')
  if not isinstance(data.image_size, int) or data.image_size < 8:
    raise ValueError(f'data.image_size={data.image_size!r} must be an integer >= 8')
  if data.crop not in preprocess.CROPS:
    raise ValueError(f'data.crop={data.crop!r} must be one of {preprocess.CROPS}')
  if data.min_size < 0:
    raise ValueError(f'data.min_size={data.min_size!r} must be >= 0')
  rrc = data.get('rrc_min_scale', 1.0)
  if not 0.0 < rrc <= 1.0:
    raise ValueError(f'data.rrc_min_scale={rrc!r} must be in (0, 1]')
  background = tuple(data.get('background', (255, 255, 255)))
  if len(background) != 3 or not all(0 <= int(c) <= 255 for c in background):
    raise ValueError(f'data.background={background!r} must be 3 integers in [0, 255]')
  if data.source == 'synthetic' and data.num_synthetic < 1:
    raise ValueError(f'data.num_synthetic={data.num_synthetic!r} must be >= 1')
  if data.source in ('folder', 'cat_dataset'):
    if not data.dir:
      raise ValueError(f"data.dir='' must name a folder of images for "
                       f'data.source={data.source!r}')
    if not os.path.isdir(data.dir):
      raise ValueError(f'data.dir={data.dir!r} does not exist or is not a directory')
  manifest = data.get('manifest', '')
  if manifest and not os.path.isfile(manifest):
    raise ValueError(f'data.manifest={manifest!r} does not exist')
