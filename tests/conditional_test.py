"""Class-conditional GANs: labels from the data, conditional G and D, runs."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from catgan_jax import config_lib
from catgan_jax import generate
from catgan_jax import models
from catgan_jax import train
from catgan_jax.data import pipeline
from catgan_jax.data import preprocess
from catgan_jax.data import sources
from catgan_jax.data import synthetic
from catgan_jax.models import conditioning
from catgan_jax.models import dcgan
from configs import pets64_cond
import helpers

COND = {
    'data.num_classes': 4,
    'model.g_cond': 'cbn',
    'model.d_cond': 'projection',
}


def _png(path, value):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)


def _folder_config(folder, num_classes):
  return helpers.config_with(
      **{
          'data.source': 'folder',
          'data.dir': str(folder),
          'data.num_classes': num_classes,
      }
  )


def test_labels_from_subfolders(tmp_path):
  for name, value in (('tabby', 10), ('siamese', 200)):
    for i in range(2):
      _png(str(tmp_path / name / f'{i}.png'), value + i)
  source = sources.load_source(_folder_config(tmp_path, 2))
  assert source.class_names == ('siamese', 'tabby')
  assert [os.path.basename(os.path.dirname(p)) for p in source.items] == [
      source.class_names[c] for c in source.labels
  ]
  assert sorted(source.labels) == [0, 0, 1, 1]


def test_labels_from_dataset_json(tmp_path):
  for i in range(3):
    _png(str(tmp_path / 'img' / f'{i}.png'), i)
  pairs = [[f'img/{i}.png', label] for i, label in enumerate((1, 0, 1))]
  (tmp_path / 'dataset.json').write_text(json.dumps({'labels': pairs}))
  source = sources.load_source(_folder_config(tmp_path, 2))
  assert list(source.labels) == [1, 0, 1]
  # An image the file does not label is refused.
  _png(str(tmp_path / 'img' / '3.png'), 3)
  with pytest.raises(ValueError, match="no label for image 'img/3.png'"):
    sources.load_source(_folder_config(tmp_path, 2))


def test_class_count_mismatch_and_empty_class_are_one_line(tmp_path):
  data = tmp_path / 'data'
  _png(str(data / 'a' / '0.png'), 0)
  _png(str(data / 'b' / '0.png'), 9)
  with pytest.raises(ValueError, match=r'data.num_classes=3 but .* has 2'):
    sources.load_source(_folder_config(data, 3))
  os.makedirs(data / 'c')
  with pytest.raises(ValueError, match="class 'c' has no images") as e:
    sources.load_source(_folder_config(data, 3))
  assert '\n' not in str(e.value)
  # The trainer stops with it (exit 2 from main.py) before writing.
  workdir = tmp_path / 'run'
  config = helpers.override(_folder_config(data, 3), **COND)
  config.data.num_classes = 3
  with pytest.raises(config_lib.ConfigError, match='has no images'):
    train.train_and_evaluate(config, str(workdir))
  assert not workdir.exists() or not os.listdir(workdir)


def _pairs(config, n, start_step=0):
  it = pipeline.create_input_iter(
      config, local_batch_size=4, start_step=start_step
  )
  return [next(it) for _ in range(n)]


def test_labels_travel_with_images_and_resume():
  config = helpers.config_with(**COND, **{'data.num_synthetic': 12})
  side = preprocess.cache_side(16, 1.0)
  faces = [synthetic.draw_cat_face(side, 0, i) for i in range(12)]
  batches = _pairs(config, 4)
  for images, labels in batches:
    assert labels.dtype == np.int32
    for image, label in zip(images, labels):
      (index,) = [i for i, f in enumerate(faces) if np.array_equal(f, image)]
      assert label == synthetic.face_class(0, index)
  # A resumed iterator sees the same (image, label) pairs.
  for (x, y), (rx, ry) in zip(batches[2:], _pairs(config, 2, start_step=2)):
    np.testing.assert_array_equal(x, rx)
    np.testing.assert_array_equal(y, ry)
  # Unconditional batches stay plain image arrays.
  (plain,) = _pairs(helpers.config_with(**{'data.num_synthetic': 12}), 1)
  assert isinstance(plain, np.ndarray)
  np.testing.assert_array_equal(plain, batches[0][0])


@pytest.mark.parametrize('g_cond', ['concat', 'cbn'])
def test_conditional_networks_use_the_label(g_cond):
  config = helpers.config_with(**{**COND, 'model.g_cond': g_cond})
  g, d = models.create_models(config)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 16))
  x = jax.random.uniform(jax.random.PRNGKey(1), (4, 16, 16, 3), minval=-1)
  g_vars = g.init(jax.random.PRNGKey(2), z, train=False)
  d_vars = d.init(jax.random.PRNGKey(3), x, train=False)
  y0, y1 = jnp.zeros(4, jnp.int32), jnp.ones(4, jnp.int32)
  a = g.apply(g_vars, z, train=False, y=y0)
  assert a.shape == (4, 16, 16, 3)
  assert not np.allclose(a, g.apply(g_vars, z, train=False, y=y1))
  la = d.apply(d_vars, x, train=False, y=y0)
  assert la.shape == (4,)
  assert not np.allclose(la, d.apply(d_vars, x, train=False, y=y1))
  # Without labels the classes come in blocks.
  np.testing.assert_allclose(
      g.apply(g_vars, z, train=False),
      g.apply(g_vars, z, train=False, y=jnp.array([0, 1, 2, 3])),
  )


def test_unconditional_networks_have_their_old_parameters():
  g, d = models.create_models(helpers.config_with())
  z = jnp.zeros((1, 16))
  g_params = g.init(jax.random.PRNGKey(0), z, train=False)['params']
  d_params = d.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), train=False
  )['params']
  assert 'class_embedding' not in g_params and 'projection' not in d_params
  assert not any('Conditional' in name for name in g_params)


def test_projection_against_hand_computation():
  features = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
  table = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]], np.float32)
  y = np.array([1, 0])
  pooled = features.sum((1, 2))
  want = [pooled[0] @ table[1], pooled[1] @ table[0]]
  got = conditioning.projection(jnp.asarray(features), jnp.asarray(table), y)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # In D: the logits of two labels differ by <E[a] - E[b], phi(x)>, zero
  # when the two embedding rows are equal.
  d = dcgan.Discriminator(
      image_size=16, width=4, num_classes=2, cond='projection'
  )
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 16, 16, 3))
  variables = d.init(jax.random.PRNGKey(1), x, train=False)
  params = jax.tree.map(lambda p: p, variables['params'])
  params['projection']['embedding'] = jnp.ones((2, 8))
  same = {**variables, 'params': params}
  np.testing.assert_allclose(
      d.apply(same, x, train=False, y=jnp.zeros(3, jnp.int32)),
      d.apply(same, x, train=False, y=jnp.ones(3, jnp.int32)),
  )


def test_conditional_batchnorm_against_hand_computation():
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 2, 2, 3)) * 3 + 1
  e = jax.random.normal(jax.random.PRNGKey(1), (4, 5))
  module = conditioning.ConditionalBatchNorm()
  variables = module.init(jax.random.PRNGKey(2), x, e, train=True)
  out, _ = module.apply(variables, x, e, train=True, mutable=['batch_stats'])
  p = variables['params']
  xn = np.asarray(x)
  mean, var = xn.mean((0, 1, 2)), xn.var((0, 1, 2))
  norm = (xn - mean) / np.sqrt(var + 1e-5)
  gain = 1 + np.asarray(e) @ p['gain']['kernel'] + p['gain']['bias']
  bias = np.asarray(e) @ p['bias']['kernel'] + p['bias']['bias']
  want = norm * gain[:, None, None] + bias[:, None, None]
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope='module')
def cond_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('cond') / 'run')
  config = helpers.config_with(**COND, num_train_steps=2)
  return config, workdir, train.train_and_evaluate(config, workdir)


def test_conditional_run_resumes_exactly(cond_run, tmp_path):
  config, workdir, state = cond_run
  assert os.listdir(os.path.join(workdir, 'samples'))
  resumed = str(tmp_path / 'resumed')
  first = helpers.override(
      config.copy_and_resolve_references(), **{'num_train_steps': 1}
  )
  train.train_and_evaluate(first, resumed)
  again = train.train_and_evaluate(config, resumed)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_generate_class_picks_the_embedding(cond_run, tmp_path):
  config, workdir, _ = cond_run
  assert generate.class_indices(config, 'grey') == [1]
  assert generate.class_indices(config, '3') == [3]
  assert generate.class_indices(config, 'all') == [0, 1, 2, 3]
  with pytest.raises(Exception, match="'tabby' is not a class"):
    generate.class_indices(config, 'tabby')
  by_name = generate.generate(
      workdir, str(tmp_path / 'a'), num=2, classes_spec='grey', grid=True
  )
  by_index = generate.generate(
      workdir, str(tmp_path / 'b'), num=2, classes_spec='1', grid=True
  )
  other = generate.generate(
      workdir, str(tmp_path / 'c'), num=2, classes_spec='3', grid=True
  )
  read = lambda paths: np.asarray(Image.open(paths[0]))
  np.testing.assert_array_equal(read(by_name), read(by_index))
  assert not np.array_equal(read(by_name), read(other))
  # --class all: one row per class, each row the class's own images.
  rows = generate.generate(
      workdir, str(tmp_path / 'd'), num=2, classes_spec='all', grid=True
  )
  grid = read(rows)
  tile = 16 + 2
  # (Up to rounding: a batch of 8 and one of 2 round differently.)
  np.testing.assert_allclose(
      grid[tile : 2 * tile + 2].astype(int),
      read(by_index)[: tile + 2].astype(int),
      atol=1,
  )


def test_pets_cat_breeds_are_the_tfds_cat_labels(tmp_path):
  # The names come from the TFDS builder's code: nothing is downloaded.
  cats = pets64_cond.get_config('cats')
  cats.data.tfds_data_dir = str(tmp_path)
  names = sources.class_names(cats)
  assert names == (
      'Abyssinian',
      'Bengal',
      'Birman',
      'Bombay',
      'British_Shorthair',
      'Egyptian_Mau',
      'Maine_Coon',
      'Persian',
      'Ragdoll',
      'Russian_Blue',
      'Siamese',
      'Sphynx',
  )
  breeds = pets64_cond.get_config()
  breeds.data.tfds_data_dir = str(tmp_path)
  every = sources.class_names(breeds)
  # The dataset writes cat breeds capitalised, dog breeds in lower case.
  assert len(every) == breeds.data.num_classes == 37
  assert tuple(n for n in every if n[0].isupper()) == names
  assert generate.class_indices(cats, 'Siamese') == [10]
