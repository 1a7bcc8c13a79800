"""The tf.data input pipeline: shard, shuffle, decode, augment and batch images.

The pipeline is built on element indices rather than on a stateful shuffle, so
that it is deterministic and resumable at no cost:

* element ``k`` of process ``p`` (``k = step * local_batch_size + j``) reads
  item ``index_shuffle(k % n, seed(seed, p, k // n))`` of the process's shard:
  every epoch is a fresh permutation of the shard, computed per element;
* its augmentation (random crop, random resized crop, flip) is seeded by
  ``(seed, k * process_count + p)`` with stateless ops.

Starting at ``start_step`` therefore only starts the index range later; nothing
is decoded to get there. Decoding (PIL: any mode, EXIF orientation, crop and
antialiased resize, see ``preprocess.py``) happens once per image into memory
when ``data.cache`` is set, else per element inside tf.data.

With ``data.num_classes`` > 0 an element is an (image, label) pair: the label
is looked up by the same item index as the image (also where an unusable
image is replaced by the next one), so a resumed run sees the same pairs.
"""

import collections
import concurrent.futures
import dataclasses
import functools
import os
import threading
from typing import Callable, Iterator

from absl import logging
import ml_collections
import numpy as np
import tqdm
import tensorflow as tf

from catgan_jax.data import preprocess
from catgan_jax.data import sources as sources_lib

# Salts that keep the shuffling and augmentation random streams apart.
_SHUFFLE_SALT = 0x5EED
_AUGMENT_SALT = 0xA06
# Individual decoding failures logged (each once); the rest are only counted.
_MAX_LOGGED_FAILURES = 20
_LAST_ELEMENT = 2**62


@dataclasses.dataclass
class _Decoder:
  """Decodes items of a source to uint8 arrays at the cache size, counting failures."""

  source: sources_lib.Source
  side: int
  crop: str
  min_size: int
  background: tuple[int, int, int]
  counts: collections.Counter = dataclasses.field(
      default_factory=collections.Counter
  )
  bad: set[int] = dataclasses.field(default_factory=set)
  # Images whose shorter side is below `side`: the resize enlarges them.
  upscaled: int = 0
  # Items kept by `_decode_all` (the labels of the cached images).
  usable_indices: list[int] = dataclasses.field(default_factory=list)
  lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

  def __call__(self, index: int) -> np.ndarray:
    """Decodes item ``index``; raises ``UnusableImageError`` (recorded once)."""
    item = self.source.items[index]
    try:
      image = preprocess.load_rgb(
          self.source.open_fn(item),
          min_size=self.min_size,
          background=self.background,
          draft_side=self.side,
      )
      if min(image.size) < self.side:
        with self.lock:
          self.upscaled += 1
      return preprocess.crop_and_resize(image, self.side, self.crop)
    except preprocess.UnusableImageError as e:
      with self.lock:
        if index not in self.bad:
          self.bad.add(index)
          self.counts[e.reason] += 1
          if len(self.bad) <= _MAX_LOGGED_FAILURES:
            logging.warning(
                'Skipping image %s (%s): %s',
                self.source.name_fn(item),
                e.reason,
                e,
            )
          elif len(self.bad) == _MAX_LOGGED_FAILURES + 1:
            logging.warning('More images skipped; only their count is logged.')
      raise

  def try_decode(self, index: int) -> np.ndarray | None:
    try:
      return self(index)
    except preprocess.UnusableImageError:
      return None

  def decode_or_next(self, index: int) -> np.ndarray:
    """Item ``index`` or, if it is unusable, the next usable one (wrapping around).

    Substituting keeps every element slot filled, so the element -> step mapping
    (and therefore exact resumption) does not depend on which files fail.
    """
    return self.decode_or_next_indexed(index)[0]

  def decode_or_next_indexed(self, index: int) -> tuple[np.ndarray, int]:
    """``decode_or_next`` and the index of the item it decoded."""
    n = len(self.source)
    for offset in range(n):
      candidate = (index + offset) % n
      if candidate in self.bad:
        continue
      image = self.try_decode(candidate)
      if image is not None:
        return image, candidate
    raise self.no_usable_error(n)

  def no_usable_error(self, found: int) -> ValueError:
    details = ', '.join(
        f'{count} {reason}' for reason, count in sorted(self.counts.items())
    )
    return ValueError(
        f'{self.source.description}: no usable image among {found} found '
        f'({details or "none decoded"}; data.min_size={self.min_size})'
    )


def _decode_all(decoder: _Decoder) -> list[np.ndarray]:
  """Decodes every item once, in parallel threads (PIL releases the GIL).

  Unusable items are left out; ``usable_indices`` says which were kept.
  """
  workers = min(32, (os.cpu_count() or 1) + 2)
  n = len(decoder.source)
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    images = list(
        tqdm.tqdm(
            pool.map(decoder.try_decode, range(n)),
            total=n,
            unit='img',
            desc='decode',
            disable=None,
        )
    )
  usable = [image for image in images if image is not None]
  decoder.usable_indices = [
      i for i, image in enumerate(images) if image is not None
  ]
  logging.info(
      '%s: %d of %d images usable (%s).',
      decoder.source.description,
      len(usable),
      len(images),
      dict(decoder.counts) or 'none skipped',
  )
  if decoder.upscaled:
    # A folder of small photos for a large model trains on blurred images;
    # data.min_size set to data.image_size skips them instead.
    logging.warning(
        '%s: %d of %d usable images are smaller than %d px and '
        'are upscaled (data.min_size=%d skips them).',
        decoder.source.description,
        decoder.upscaled,
        len(usable),
        decoder.side,
        decoder.side,
    )
  if not usable:
    raise decoder.no_usable_error(len(images))
  return usable


def _in_memory_lookup(
    images: list[np.ndarray],
) -> Callable[[tf.Tensor], tf.Tensor]:
  """index -> image from decoded images kept in memory (dense or ragged)."""
  if len({image.shape for image in images}) == 1:
    table = tf.constant(np.stack(images))
    return lambda index: tf.gather(table, index)
  # Images of different shapes (random crops keep the aspect ratio) are stored
  # back to back in one flat buffer.
  sizes = np.array([image.size for image in images], np.int64)
  offsets = tf.constant(np.concatenate([[0], np.cumsum(sizes)[:-1]]), tf.int64)
  shapes = tf.constant(
      np.array([image.shape[:2] for image in images], np.int64)
  )
  flat = tf.constant(np.concatenate([image.reshape(-1) for image in images]))

  def lookup(index):
    height, width = shapes[index, 0], shapes[index, 1]
    start = offsets[index]
    return tf.reshape(
        flat[start : start + height * width * 3], tf.stack([height, width, 3])
    )

  return lookup


def _lazy_lookup(
    decoder: _Decoder, square: bool
) -> Callable[[tf.Tensor], tf.Tensor]:
  """index -> image decoded on the fly (data.cache=False)."""
  shape = [decoder.side, decoder.side, 3] if square else [None, None, 3]

  def lookup(index):
    image = tf.numpy_function(
        lambda i: decoder.decode_or_next(int(i)),
        [index],
        tf.uint8,
        stateful=False,
    )
    image.set_shape(shape)
    return image

  return lookup


def _lazy_labelled_lookup(
    decoder: _Decoder, square: bool
) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
  """index -> (image, label) decoded on the fly; a substitute brings its label."""
  shape = [decoder.side, decoder.side, 3] if square else [None, None, 3]
  labels = np.asarray(decoder.source.labels, np.int32)

  def decode(i):
    image, used = decoder.decode_or_next_indexed(int(i))
    return image, labels[used]

  def lookup(index):
    image, label = tf.numpy_function(
        decode, [index], (tf.uint8, tf.int32), stateful=False
    )
    image.set_shape(shape)
    label.set_shape([])
    return image, label

  return lookup


def _item_and_seed(
    k: tf.Tensor,
    *,
    num_items: int,
    seed: int,
    process_index: int,
    process_count: int,
) -> tuple[tf.Tensor, tf.Tensor]:
  """Item index of local element ``k`` and the seed of its augmentation."""
  fold_in = tf.random.experimental.stateless_fold_in
  epoch, position = k // num_items, k % num_items
  shuffle_seed = fold_in(
      fold_in(tf.constant([seed, _SHUFFLE_SALT], tf.int64), process_index),
      epoch,
  )
  item = tf.random.experimental.index_shuffle(
      position, shuffle_seed, tf.constant(num_items - 1, tf.int64)
  )
  element_seed = fold_in(
      tf.constant([seed, _AUGMENT_SALT], tf.int64),
      k * process_count + process_index,
  )
  return item, element_seed


def _augment(
    image: tf.Tensor,
    seed: tf.Tensor,
    *,
    image_size: int,
    random_crop: bool,
    rrc_min_scale: float,
    flip: bool,
) -> tf.Tensor:
  """Per-element random square crop, random resized crop, resize and flip."""
  crop_seed, scale_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 3)
  )
  rrc = rrc_min_scale < 1.0
  if random_crop or rrc:
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    if rrc:
      area = tf.random.stateless_uniform([], scale_seed, rrc_min_scale, 1.0)
      side = tf.cast(
          tf.round(tf.sqrt(area) * tf.cast(side, tf.float32)), tf.int32
      )
      side = tf.maximum(side, 1)
    image = tf.image.stateless_random_crop(
        image, tf.stack([side, side, 3]), crop_seed
    )
  if rrc:
    image = tf.image.resize(
        image, [image_size, image_size], method='bicubic', antialias=True
    )
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
  if flip:
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
  return tf.ensure_shape(image, [image_size, image_size, 3])


validate_data_config = sources_lib.validate_data_config


def create_dataset(
    config: ml_collections.ConfigDict,
    *,
    local_batch_size: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> tf.data.Dataset:
  """The endless, batched tf.data pipeline of one process (see ``create_input_iter``)."""
  validate_data_config(config)
  if local_batch_size < 1:
    raise ValueError(f'local_batch_size={local_batch_size} must be >= 1')
  if not 0 <= process_index < process_count:
    raise ValueError(
        f'process_index={process_index} must be in [0, {process_count})'
    )
  if start_step < 0:
    raise ValueError(f'start_step={start_step} must be >= 0')
  data = config.data
  rrc_min_scale = float(data.get('rrc_min_scale', 1.0))
  crop = 'none' if data.crop == 'squash' else data.crop

  source = sources_lib.load_source(config)
  shard = sources_lib.shard(source, process_index, process_count)
  if not len(shard):
    raise ValueError(
        f'{source.description}: {len(source)} images cannot be shared by '
        f'{process_count} processes (process {process_index} gets none)'
    )
  decoder = _Decoder(
      shard,
      side=preprocess.cache_side(data.image_size, rrc_min_scale),
      crop=crop,
      min_size=data.min_size if shard.filter_small else 0,
      background=tuple(int(c) for c in data.background),
  )
  labelled = shard.labels is not None and data.get('num_classes', 0) > 0
  if data.cache:
    images = _decode_all(decoder)
    lookup = _in_memory_lookup(images)
    num_items = len(images)
    if labelled:
      table = tf.constant(
          np.asarray(shard.labels, np.int32)[decoder.usable_indices]
      )
      image_lookup = lookup
      lookup = lambda index: (image_lookup(index), tf.gather(table, index))
  else:
    # Fail now, with a clear error, if not a single image decodes.
    decoder.decode_or_next(0)
    lookup = (_lazy_labelled_lookup if labelled else _lazy_lookup)(
        decoder, square=crop != 'random'
    )
    num_items = len(shard)
  logging.info(
      'Process %d/%d reads %d images of %s.',
      process_index,
      process_count,
      num_items,
      source.description,
  )

  def element(k):
    item, seed = _item_and_seed(
        k,
        num_items=num_items,
        seed=config.seed,
        process_index=process_index,
        process_count=process_count,
    )
    augment = functools.partial(
        _augment,
        seed=seed,
        image_size=data.image_size,
        random_crop=crop == 'random',
        rrc_min_scale=rrc_min_scale,
        flip=bool(data.flip),
    )
    if labelled:
      image, label = lookup(item)
      return augment(image), label
    return augment(lookup(item))

  start = start_step * local_batch_size
  ds = tf.data.Dataset.range(start, _LAST_ELEMENT)
  ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local_batch_size, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def create_input_iter(
    config: ml_collections.ConfigDict,
    *,
    local_batch_size: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[np.ndarray]:
  """Endless iterator of uint8 batches [local_batch_size, S, S, 3] (S = data.image_size).

  With ``data.num_classes`` > 0 a batch is a pair (images, int32 labels
  [local_batch_size]); otherwise the images alone.

  Deterministic: batches depend only on (config.seed, config.data,
  local_batch_size, process_index, process_count, start_step), and the batch of
  step ``s`` is the same whether the iterator started at 0 and was advanced
  ``s`` times or was created with ``start_step=s``. Each process reads its own
  disjoint shard of the images (every ``process_count``-th one).

  Args:
    config: run configuration; reads ``config.seed`` and ``config.data``.
    local_batch_size: images per batch of this process.
    start_step: index of the first batch (for resuming).
    process_index: index of this process.
    process_count: number of processes reading the data.

  Returns:
    An iterator of numpy uint8 arrays.
  """
  ds = create_dataset(
      config,
      local_batch_size=local_batch_size,
      start_step=start_step,
      process_index=process_index,
      process_count=process_count,
  )
  return ds.as_numpy_iterator()
