"""Image sources, looked up by ``config.data.source`` in ``SOURCES``.

A source lists its images without decoding them: a ``Source`` holds one item
per image (a path, encoded bytes or an index) in a fixed order, and a function
that turns an item into something ``preprocess.load_rgb`` can decode. The
pipeline shards, shuffles, decodes and augments items, so a new source is one
loader function and one ``SOURCES`` entry.
"""

import dataclasses
import json
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
    labels: the class index of each item, or None for unlabelled images.
    class_names: the name of each class (index -> name).
  """

  description: str
  items: Sequence[Any]
  open_fn: Callable[[Any], Any] = lambda item: item
  name_fn: Callable[[Any], str] = str
  filter_small: bool = True
  labels: Sequence[int] | None = None
  class_names: tuple[str, ...] = ()

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
  """Procedurally drawn cat faces, drawn lazily at the pipeline's cache size.

  Labelled by coat colour (``synthetic.CLASS_NAMES``) when
  ``data.num_classes`` > 0.
  """
  data = config.data
  side = preprocess.cache_side(data.image_size, data.get('rrc_min_scale', 1.0))
  # A fixed data set seed: runs with different config.seed see the same faces.
  data_seed = data.get('synthetic_seed', 0)
  n = data.num_synthetic
  logging.info(
      'Source synthetic: %d procedurally drawn cat faces at %dpx.', n, side
  )
  labels, class_names = None, ()
  if data.get('num_classes', 0):
    labels = [synthetic.face_class(data_seed, i) for i in range(n)]
    class_names = synthetic.CLASS_NAMES
  return Source(
      description=f'synthetic cat faces (n={n})',
      items=range(n),
      open_fn=lambda i: synthetic.draw_cat_face(side, data_seed, int(i)),
      name_fn=lambda i: f'synthetic[{i}]',
      filter_small=False,
      labels=labels,
      class_names=class_names,
  )


# stylegan2-ada-pytorch's dataset_tool.py writes the labels of a folder here.
DATASET_JSON = 'dataset.json'


def _labels_from_dataset_json(
    folder: str, paths: Sequence[str]
) -> tuple[list[int], tuple[str, ...]]:
  """Labels of ``paths`` from ``folder/dataset.json`` ({"labels": [[rel, c]]})."""
  json_path = os.path.join(folder, DATASET_JSON)
  try:
    with open(json_path) as f:
      pairs = json.load(f)['labels']
    by_path = {os.path.normpath(rel): int(label) for rel, label in pairs}
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(
        f'{json_path}: not a stylegan2-ada label file '
        f'({{"labels": [[relative path, class index], ...]}}): {e}'
    ) from e
  labels = []
  for path in paths:
    rel = os.path.normpath(os.path.relpath(path, folder))
    if rel not in by_path:
      raise ValueError(f'{json_path}: no label for image {rel!r}')
    labels.append(by_path[rel])
  if any(label < 0 for label in labels):
    raise ValueError(f'{json_path}: class indices must be >= 0')
  num = max(labels) + 1 if labels else 0
  return labels, tuple(str(c) for c in range(num))


def _labels_from_subfolders(
    folder: str, paths: Sequence[str]
) -> tuple[list[int], tuple[str, ...]]:
  """Labels of ``paths`` by their first sub-folder (torchvision's ImageFolder)."""
  names = sorted(
      d
      for d in os.listdir(folder)
      if not d.startswith('.') and os.path.isdir(os.path.join(folder, d))
  )
  index = {name: i for i, name in enumerate(names)}
  labels = []
  for path in paths:
    rel = os.path.relpath(path, folder)
    top = rel.split(os.sep)[0]
    if top == rel or top not in index:
      raise ValueError(
          f'data.dir={folder!r}: image {rel!r} is in no class sub-folder '
          f'(a labelled folder holds one sub-folder per class, or a '
          f'{DATASET_JSON})'
      )
    labels.append(index[top])
  return labels, tuple(names)


def folder_labels(
    folder: str, paths: Sequence[str]
) -> tuple[list[int], tuple[str, ...]]:
  """Class labels of image ``paths`` under ``folder`` and the class names.

  From ``folder/dataset.json`` as stylegan2-ada's dataset_tool.py writes it
  when there is one, else from the first-level sub-folder of each image.
  """
  if os.path.isfile(os.path.join(folder, DATASET_JSON)):
    return _labels_from_dataset_json(folder, paths)
  return _labels_from_subfolders(folder, paths)


def check_classes(source: Source, num_classes: int) -> None:
  """Checks the classes found in ``source`` against ``data.num_classes``.

  Raises:
    ValueError: a different number of classes, or a class with no images.
  """
  found = len(source.class_names)
  if found != num_classes:
    raise ValueError(
        f'data.num_classes={num_classes} but {source.description} has '
        f'{found} classes ({", ".join(source.class_names[:8])}'
        f'{", ..." if found > 8 else ""})'
    )
  counts = [0] * found
  for label in source.labels:
    if not 0 <= label < found:
      raise ValueError(
          f'{source.description}: label {label} outside [0, {found})'
      )
    counts[label] += 1
  empty = [name for name, count in zip(source.class_names, counts) if not count]
  if empty:
    raise ValueError(
        f'{source.description}: class {empty[0]!r} has no images '
        f'({len(empty)} of {found} classes empty)'
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
  if config.data.get('num_classes', 0):
    labels, class_names = folder_labels(folder, paths)
    return Source(
        description=description,
        items=paths,
        labels=labels,
        class_names=class_names,
    )
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
  conditional = bool(data.get('num_classes', 0))
  ds = ds.map(
      lambda ex: (ex[image_key], ex[label_key])
      if conditional
      else ex[image_key]
  )
  items = list(ds.as_numpy_iterator())
  logging.info('Source tfds: %d images in %s.', len(items), description)
  if not items:
    raise ValueError(f'{description}: no images')
  name_fn = lambda item: f'{data.tfds_name} image ({len(item)} bytes)'
  if not conditional:
    return Source(description=description, items=items, name_fn=name_fn)
  items, raw = [image for image, _ in items], [int(c) for _, c in items]
  feature = builder.info.features[label_key]
  names = list(getattr(feature, 'names', None) or map(str, range(max(raw) + 1)))
  # With data.tfds_labels the kept labels become classes 0..k-1, in order.
  kept = labels or tuple(range(len(names)))
  remap = {label: i for i, label in enumerate(kept)}
  return Source(
      description=description,
      items=items,
      name_fn=name_fn,
      labels=[remap[c] for c in raw],
      class_names=tuple(names[c] for c in kept),
  )


# data.source -> loader(config) -> Source.
SOURCES: dict[str, Callable[[ml_collections.ConfigDict], Source]] = {
    'synthetic': load_synthetic,
    'folder': load_folder,
    'tfds': load_tfds,
    'cat_dataset': load_cat_dataset,
}


def load_source(config: ml_collections.ConfigDict) -> Source:
  """Returns the ``Source`` named by ``config.data.source``.

  With ``data.num_classes`` > 0 its labels are checked against it.
  """
  name = config.data.source
  if name not in SOURCES:
    raise ValueError(
        f'data.source={name!r} is unknown; valid: {sorted(SOURCES)}'
    )
  source = SOURCES[name](config)
  num_classes = config.data.get('num_classes', 0)
  if num_classes:
    if name == 'cat_dataset' or source.labels is None:
      raise ValueError(
          f'data.num_classes={num_classes}: data.source={name!r} has no labels'
      )
    check_classes(source, num_classes)
  return source


def class_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The class names of ``config.data`` without reading any image.

  Synthetic: the coat colours; folder: the sub-folders (or the indices of
  a dataset.json); TFDS: the label feature's names (of data.tfds_labels).
  """
  data = config.data
  if data.source == 'synthetic':
    return synthetic.CLASS_NAMES
  if data.source == 'folder':
    folder = data.dir
    if os.path.isfile(os.path.join(folder, DATASET_JSON)):
      return tuple(str(c) for c in range(data.num_classes))
    return tuple(
        sorted(
            d
            for d in os.listdir(folder)
            if not d.startswith('.') and os.path.isdir(os.path.join(folder, d))
        )
    )
  if data.source == 'tfds':
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    builder = tfds.builder(data.tfds_name, data_dir=data.tfds_data_dir or None)
    names = builder.info.features[data.get('tfds_label_key', 'label')].names
    kept = tuple(int(c) for c in data.tfds_labels) or range(len(names))
    return tuple(names[c] for c in kept)
  raise ValueError(f'data.source={data.source!r} has no classes')


def shard(source: Source, process_index: int, process_count: int) -> Source:
  """The disjoint part of ``source`` read by one process (every count-th item)."""
  items = source.items[process_index::process_count]
  labels = source.labels
  if labels is not None:
    labels = labels[process_index::process_count]
  return dataclasses.replace(source, items=items, labels=labels)


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
  num_classes = data.get('num_classes', 0)
  if not isinstance(num_classes, int) or num_classes < 0:
    raise ValueError(
        f'data.num_classes={num_classes!r} must be an integer >= 0 '
        '(0: unconditional)'
    )
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
