"""Tests of the input pipeline: sources, determinism, resumption, sharding, bad files."""

import os

import numpy as np
from PIL import Image
import pytest

from catgan_jax import data
from catgan_jax.data import synthetic
from configs import default

CAT_FACES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    '..',
    'shared',
    'data',
    'cat_faces_64',
)


def _config(**data_fields):
  config = default.get_config()
  config.data.num_synthetic = 24
  config.data.image_size = 16
  for name, value in data_fields.items():
    config.data[name] = value
  return config


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _id_folder(folder, n, size=8):
  """n solid-colour PNGs whose red channel is 10 * (index + 1): ids survive decoding."""
  os.makedirs(folder, exist_ok=True)
  for i in range(n):
    colour = (10 * (i + 1), 100, 200)
    # Nested sub-folders check the recursive listing.
    sub = os.path.join(folder, f'sub{i % 3}')
    os.makedirs(sub, exist_ok=True)
    Image.new('RGB', (size, size), colour).save(
        os.path.join(sub, f'{i:03d}.png')
    )
  return folder


def _ids(batch):
  """Image ids of a batch of solid images built by ``_id_folder``."""
  reds = batch[:, :, :, 0].reshape(len(batch), -1)
  assert (reds == reds[:, :1]).all()  # Still solid: nothing mixed images.
  return [int(r) // 10 - 1 for r in reds[:, 0]]


def test_synthetic_faces_look_like_faces():
  faces = synthetic.draw_cat_faces(8, 32, seed=3)
  assert faces.shape == (8, 32, 32, 3) and faces.dtype == np.uint8
  np.testing.assert_array_equal(faces, synthetic.draw_cat_faces(8, 32, seed=3))
  # Image i depends only on (seed, i): a prefix of a larger set is the smaller set.
  np.testing.assert_array_equal(
      faces[:4], synthetic.draw_cat_faces(4, 32, seed=3)
  )
  assert not np.array_equal(faces, synthetic.draw_cat_faces(8, 32, seed=4))
  for face in faces:
    assert face.std() > 20  # Not constant: a face drawn on a background.
    # The face is in the middle: the centre differs from the corner background.
    assert np.abs(face[16, 16].astype(int) - face[1, 1].astype(int)).sum() > 0
  flat = faces.reshape(8, -1).astype(int)
  distances = np.abs(flat[:, None] - flat[None]).mean(-1)
  assert (distances + np.eye(8) * 1e9).min() > 5  # All distinct.


def test_synthetic_batches_shape_dtype_range():
  iterator = data.create_input_iter(_config(), local_batch_size=8)
  batches = _take(iterator, 4)  # 32 elements: crosses an epoch of 24 images.
  for batch in batches:
    assert batch.shape == (8, 16, 16, 3) and batch.dtype == np.uint8
  stacked = np.stack(batches)
  assert stacked.min() < 60 and stacked.max() > 200  # Uses the uint8 range.


def test_same_seed_same_batches_and_seed_changes_them():
  config = _config()
  first = _take(data.create_input_iter(config, local_batch_size=4), 3)
  again = _take(data.create_input_iter(config, local_batch_size=4), 3)
  np.testing.assert_array_equal(np.stack(first), np.stack(again))
  config.seed = 1
  other = _take(data.create_input_iter(config, local_batch_size=4), 3)
  assert not np.array_equal(np.stack(first), np.stack(other))


@pytest.mark.parametrize(
    'fields',
    [
        dict(crop='center'),
        dict(crop='random', rrc_min_scale=0.5),
        dict(crop='center', cache=False),
    ],
)
def test_start_step_equals_advancing(tmp_path, fields):
  # 13 images in batches of 4: step 5 starts in the middle of the second epoch.
  folder = str(tmp_path / 'imgs')
  for i in range(13):
    rng = np.random.default_rng(i)
    Image.fromarray(rng.integers(0, 256, (24, 20 + i, 3), np.uint8)).save(
        _mkdir(folder, f'{i}.png')
    )
  config = _config(source='folder', dir=folder, min_size=8, **fields)
  advanced = _take(data.create_input_iter(config, local_batch_size=4), 7)
  resumed = _take(
      data.create_input_iter(config, local_batch_size=4, start_step=5), 2
  )
  np.testing.assert_array_equal(advanced[5], resumed[0])
  np.testing.assert_array_equal(advanced[6], resumed[1])


def _mkdir(folder, name):
  os.makedirs(folder, exist_ok=True)
  return os.path.join(folder, name)


def test_cache_and_no_cache_agree(tmp_path):
  folder = _id_folder(str(tmp_path / 'ids'), 9)
  batches = {}
  for cache in (True, False):
    config = _config(
        source='folder',
        dir=folder,
        image_size=8,
        min_size=8,
        cache=cache,
        crop='random',
        rrc_min_scale=0.6,
    )
    batches[cache] = np.stack(
        _take(data.create_input_iter(config, local_batch_size=3), 4)
    )
  np.testing.assert_array_equal(batches[True], batches[False])


def test_epochs_are_permutations_and_differ(tmp_path):
  folder = _id_folder(str(tmp_path / 'ids'), 10)
  config = _config(
      source='folder', dir=folder, image_size=8, min_size=8, flip=False
  )
  ids = _ids(
      np.concatenate(
          _take(data.create_input_iter(config, local_batch_size=5), 4)
      )
  )
  assert sorted(ids[:10]) == list(range(10)) and sorted(ids[10:]) == list(
      range(10)
  )
  assert ids[:10] != ids[10:]  # A fresh shuffle each epoch.
  assert ids[:10] != list(range(10))


def test_two_processes_read_disjoint_complete_shards(tmp_path):
  folder = _id_folder(str(tmp_path / 'ids'), 11)
  config = _config(
      source='folder', dir=folder, image_size=8, min_size=8, flip=False
  )
  seen = []
  for process_index, shard_size in ((0, 6), (1, 5)):  # 11 images: 6 + 5.
    iterator = data.create_input_iter(
        config, local_batch_size=1, process_index=process_index, process_count=2
    )
    epoch = _ids(np.concatenate(_take(iterator, shard_size)))
    assert (
        len(set(epoch)) == shard_size
    )  # One full epoch of the shard, no repeats.
    seen.append(set(epoch))
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(range(11))


def test_flip_is_random_and_deterministic(tmp_path):
  folder = str(tmp_path / 'arrow')
  image = np.zeros((16, 16, 3), np.uint8)
  image[:, :4] = 255  # Bright left edge: a flipped copy has it on the right.
  Image.fromarray(image).save(_mkdir(folder, 'a.png'))
  config = _config(source='folder', dir=folder, min_size=8, flip=True)
  batch = next(data.create_input_iter(config, local_batch_size=32))
  flipped = batch[:, 0, -1, 0] == 255
  assert (
      4 < flipped.sum() < 28
  )  # About half of 32 (binomial, p < 1e-4 to fail).
  np.testing.assert_array_equal(
      batch[~flipped], np.broadcast_to(image, batch[~flipped].shape)
  )
  np.testing.assert_array_equal(
      batch[flipped][:, :, ::-1], np.broadcast_to(image, batch[flipped].shape)
  )
  again = next(data.create_input_iter(config, local_batch_size=32))
  np.testing.assert_array_equal(batch, again)
  config.data.flip = False
  unflipped = next(data.create_input_iter(config, local_batch_size=32))
  assert (unflipped[:, 0, 0, 0] == 255).all()


def test_folder_modes_and_resize(tmp_path):
  folder = str(tmp_path / 'modes')
  Image.new('L', (40, 30), 128).save(_mkdir(folder, 'gray.jpg'))
  Image.new('RGBA', (30, 30), (255, 0, 0, 0)).save(_mkdir(folder, 'clear.png'))
  Image.new('CMYK', (30, 40), (0, 255, 255, 0)).save(_mkdir(folder, 'cmyk.jpg'))
  config = _config(
      source='folder',
      dir=folder,
      min_size=8,
      flip=False,
      background=(0, 0, 255),
  )
  batch = next(data.create_input_iter(config, local_batch_size=3))
  colours = sorted(
      tuple(int(v) for v in image.reshape(-1, 3).mean(0).round())
      for image in batch
  )
  # Transparent red on a blue background is blue; CMYK (0, 255, 255, 0) is red.
  assert colours[0] == (0, 0, 255)
  assert colours[1] == (128, 128, 128)
  assert colours[2][0] > 240 and max(colours[2][1:]) < 15


def test_bad_files_are_skipped(tmp_path):
  folder = _id_folder(str(tmp_path / 'ids'), 4, size=16)
  with open(os.path.join(folder, 'text.png'), 'w') as f:
    f.write('not an image')
  open(os.path.join(folder, 'empty.jpg'), 'wb').close()
  Image.new('RGB', (6, 6)).save(os.path.join(folder, 'tiny.png'))
  for cache in (True, False):
    config = _config(
        source='folder',
        dir=folder,
        image_size=8,
        min_size=8,
        flip=False,
        cache=cache,
    )
    ids = _ids(
        np.concatenate(
            _take(data.create_input_iter(config, local_batch_size=7), 2)
        )
    )
    assert set(ids) == set(range(4))


def test_folder_without_usable_images_is_a_clear_error(tmp_path):
  folder = str(tmp_path / 'bad')
  with open(_mkdir(folder, 'a.jpg'), 'w') as f:
    f.write('text')
  Image.new('RGB', (4, 4)).save(os.path.join(folder, 'b.png'))
  for cache in (True, False):
    config = _config(source='folder', dir=folder, cache=cache)
    with pytest.raises(
        ValueError,
        match=r'bad.*no usable image among 2 found '
        r'\(1 not_image, 1 too_small; data.min_size=32\)',
    ):
      next(data.create_input_iter(config, local_batch_size=2))


def test_empty_folder_is_a_clear_error(tmp_path):
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
  config = _config(source='folder', dir=str(tmp_path / 'empty'))
  with pytest.raises(ValueError, match='empty.*no image files'):
    data.create_input_iter(config, local_batch_size=2)


@pytest.mark.parametrize(
    'field, value, message',
    [
        (
            'source',
            'imagenet',
            r"data.source='imagenet' is unknown; valid: \[.*'folder'.*"
            r"'synthetic'",
        ),
        ('image_size', 4, 'data.image_size=4'),
        ('crop', 'middle', "data.crop='middle'"),
        ('rrc_min_scale', 0.0, 'data.rrc_min_scale=0.0'),
    ],
)
def test_validate_data_config_rejects_bad_fields(field, value, message):
  config = _config(**{field: value})
  with pytest.raises(ValueError, match=message):
    data.validate_data_config(config)


def test_validate_data_config_folder(tmp_path):
  data.validate_data_config(_config())  # The default config is valid.
  with pytest.raises(ValueError, match="data.dir=''"):
    data.validate_data_config(_config(source='folder', dir=''))
  missing = str(tmp_path / 'missing')
  with pytest.raises(ValueError, match=f'data.dir={missing!r} does not exist'):
    data.validate_data_config(_config(source='folder', dir=missing))
  a_file = tmp_path / 'file.jpg'
  a_file.write_text('x')
  with pytest.raises(ValueError, match='is not a directory'):
    data.validate_data_config(_config(source='folder', dir=str(a_file)))


@pytest.mark.skipif(
    not os.path.isdir(CAT_FACES), reason='needs ../shared/data/cat_faces_64'
)
def test_real_cat_faces_subset(tmp_path):
  names = sorted(os.listdir(CAT_FACES))[:40]
  manifest = tmp_path / 'manifest.txt'
  manifest.write_text('\n'.join(names) + '\n')
  config = _config(
      source='folder', dir=CAT_FACES, manifest=str(manifest), image_size=32
  )
  batch = next(data.create_input_iter(config, local_batch_size=16))
  assert batch.shape == (16, 32, 32, 3) and batch.dtype == np.uint8
  assert 40 < batch.mean() < 220 and batch.std() > 20


def _mean_colour(image):
  return tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(0).round())


def test_load_rgb_converts_every_mode(tmp_path):
  from catgan_jax.data import preprocess  # pylint: disable=g-import-not-at-top

  blue = (0, 0, 255)
  cases = {}
  # 16-bit grey 32896 = 128 * 257 -> 8-bit 128.
  cases['i16.png'] = (
      Image.fromarray(np.full((8, 8), 32896, np.uint16)),
      (128, 128, 128),
  )
  half = Image.new('LA', (8, 8), (200, 128))  # 50% white-ish grey over blue.
  cases['la.png'] = (
      half,
      (100, 100, 228),
  )  # 200*128/255 = 100; 255*127/255 = 127 + 100.
  palette = Image.new('P', (8, 8), 1)
  palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
  palette.info['transparency'] = (
      1  # Index 1 (red) is transparent: all background.
  )
  cases['p_transparent.png'] = (palette, blue)
  cases['rgb.bmp'] = (Image.new('RGB', (8, 8), (10, 200, 30)), (10, 200, 30))
  cases['lossless.webp'] = (
      Image.new('RGB', (8, 8), (10, 200, 30)),
      (10, 200, 30),
  )
  for name, (image, colour) in cases.items():
    path = str(tmp_path / name)
    image.save(path, **({'lossless': True} if name.endswith('webp') else {}))
    rgb = preprocess.load_rgb(path, background=blue)
    assert rgb.mode == 'RGB' and rgb.size == (8, 8)
    assert max(abs(a - b) for a, b in zip(_mean_colour(rgb), colour)) <= 1, name


def test_load_rgb_gif_first_frame_and_exif_orientation(tmp_path):
  from catgan_jax.data import preprocess  # pylint: disable=g-import-not-at-top

  frames = [Image.new('RGB', (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
  frames[0].save(tmp_path / 'anim.gif', save_all=True, append_images=frames[1:])
  assert _mean_colour(preprocess.load_rgb(str(tmp_path / 'anim.gif'))) == (
      255,
      0,
      0,
  )
  # A 40x20 landscape photo, top half white, stored with EXIF orientation 6
  # (display rotated 90 degrees clockwise): upright it is 20x40, white on the right.
  image = np.zeros((20, 40, 3), np.uint8)
  image[:10] = 255
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.fromarray(image).save(tmp_path / 'rotated.jpg', exif=exif, quality=95)
  upright = np.asarray(preprocess.load_rgb(str(tmp_path / 'rotated.jpg')))
  assert upright.shape == (40, 20, 3)
  assert upright[:, 15:].mean() > 240 and upright[:, :5].mean() < 15


def test_tfds_source_with_label_filter():
  tfds = pytest.importorskip('tensorflow_datasets')
  from catgan_jax.data import sources  # pylint: disable=g-import-not-at-top

  config = _config(
      source='tfds',
      tfds_name='cats_vs_dogs',
      tfds_labels=(0,),
      tfds_data_dir='/nonexistent/tfds',
      min_size=8,
  )
  with tfds.testing.mock_data(num_examples=12):
    labels = [
        ex['label']
        for ex in tfds.as_numpy(
            tfds.builder(
                'cats_vs_dogs', data_dir='/nonexistent/tfds'
            ).as_dataset(split='train', shuffle_files=False)
        )
    ]
    source = sources.load_source(config)
    assert len(source) == labels.count(0) > 0
    batch = next(data.create_input_iter(config, local_batch_size=4))
  assert batch.shape == (4, 16, 16, 3) and batch.dtype == np.uint8


def test_tfds_source_missing_data_set_is_a_clear_error(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  from catgan_jax.data import sources  # pylint: disable=g-import-not-at-top

  config = _config(
      source='tfds', tfds_name='cats_vs_dogs', tfds_data_dir=str(tmp_path)
  )
  with pytest.raises(
      ValueError, match="tfds 'cats_vs_dogs'.*tfds build cats_vs_dogs"
  ):
    sources.load_source(config)
  with pytest.raises(ValueError, match="data.tfds_name=''"):
    data.validate_data_config(_config(source='tfds'))
