"""The dog experiment: its DCGAN variants, config, TFDS data and the IS."""

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import config_lib
from catgan_jax import evaluate
from catgan_jax import models
from catgan_jax import train
from catgan_jax.evaluation import inception_score
from catgan_jax.evaluation import scorer
from configs import default
from configs import dogs64

# ---------------------------------------------------------------------------
# Inception Score of known probabilities.


def test_uniform_predictions_score_one():
  probs = np.full((50, 7), 1 / 7)
  mean, std = inception_score.inception_score(probs, splits=10)
  assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0)


def test_certain_distinct_classes_score_the_number_of_classes():
  # Each split of 8 images is one-hot over 8 different classes.
  probs = np.tile(np.eye(8), (10, 1))
  mean, std = inception_score.inception_score(probs, splits=10)
  assert mean == pytest.approx(8.0) and std == pytest.approx(0, abs=1e-9)
  # The same image in every row: nothing varies, the score is 1.
  same = np.tile(np.eye(8)[:1], (80, 1))
  assert inception_score.inception_score(same)[0] == pytest.approx(1.0)


def test_inception_score_is_improved_gans_formula():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 3, (103, 12))
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  # openai/improved-gan inception_score/model.py, get_inception_score.
  scores = []
  for i in range(10):
    part = probs[(i * probs.shape[0] // 10) : ((i + 1) * probs.shape[0] // 10)]
    kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
    scores.append(np.exp(np.mean(np.sum(kl, 1))))
  got = inception_score.inception_score(probs, splits=10)
  np.testing.assert_allclose(got, (np.mean(scores), np.std(scores)), rtol=1e-12)
  # Splits differ: the std is the spread of the per-split scores.
  assert got[1] > 0


def test_inception_score_needs_as_many_images_as_splits():
  with pytest.raises(ValueError, match='eval.is_splits=10'):
    inception_score.inception_score(np.full((9, 3), 1 / 3), splits=10)


def test_is_splits_above_num_samples_is_a_config_error():
  config = dogs64.get_config()
  config.eval.num_samples = 8
  with pytest.raises(
      config_lib.ConfigError, match='eval.is_splits=10 .*eval.num_samples=8'
  ):
    config_lib.validate(config)


def test_evaluate_table_shows_the_inception_score():
  rows = [
      {
          'step': 10,
          'fid': 50.0,
          'kid': 0.05,
          'kid_std': 0.001,
          'is_mean': 2.5,
          'is_std': 0.25,
      }
  ]
  lines = evaluate.format_table(rows).splitlines()
  assert lines[0].split() == [
      'step',
      'FID',
      'KID',
      'KID',
      'std',
      'IS',
      'IS',
      'std',
  ]
  assert lines[1].split()[:6] == [
      '10',
      '50.000',
      '0.05000',
      '0.00100',
      '2.500',
      '0.250',
  ]


# ---------------------------------------------------------------------------
# The DCGAN variants.

Z_DIM = 8
KEY = jax.random.key(0, impl='rbg')


def _model_config(size=16, width=4, **model):
  config = default.get_config()
  config.data.image_size = size
  config.model.z_dim = Z_DIM
  config.model.g_width = width
  config.model.d_width = width
  config.model.update(model)
  return config


def _init(config):
  generator, discriminator = models.create_models(config)
  size = config.data.image_size
  z = jnp.ones((2, Z_DIM))
  x = jnp.zeros((2, size, size, 3))
  g_vars = generator.init(KEY, z, train=False)
  d_vars = discriminator.init(KEY, x, train=False)
  return generator, discriminator, g_vars, d_vars


def _shapes(variables):
  return jax.tree.map(lambda a: a.shape, variables)


def test_defaults_keep_the_dcgan_parameter_tree():
  # A config from before the fields existed (old config.json) and the
  # defaults build the same networks, layer for layer.
  old = _model_config()
  with old.unlocked():
    del old.model['base_size'], old.model['g_leak']
  g_old, d_old = models.create_models(old)
  g_new, d_new = models.create_models(_model_config())
  assert (g_old, d_old) == (g_new, d_new)
  assert g_new.base_size == d_new.base_size == 4 and g_new.leak == 0.0


def test_2x2_stage_adds_a_stage_to_g_and_d():
  _, _, g_plain, d_plain = _init(_model_config())
  generator, discriminator, g_vars, d_vars = _init(_model_config(base_size=2))
  w = 4
  g_params, d_params = g_vars['params'], d_vars['params']
  # At 16 px the 4x4 stage has 2w channels (w * 16 / 8); from 2x2 there are
  # three up layers, and the 2x2 stage has twice the 4x4's channels.
  plain_dense = g_plain['params']['Dense_0']['kernel']
  assert plain_dense.shape == (Z_DIM, 4 * 4 * 2 * w)
  assert g_params['Dense_0']['kernel'].shape == (Z_DIM, 2 * 2 * 4 * w)
  convs = sorted(k for k in g_params if k.startswith('ConvTranspose2x'))
  assert [g_params[k]['kernel'].shape[-1] for k in convs] == [2 * w, w, 3]
  assert len(convs) == 1 + sum(
      k.startswith('ConvTranspose2x') for k in g_plain['params']
  )
  # D: one more stride-2 layer (to 2x2, 4w channels), then a 2x2 head.
  d_convs = [d_params[f'Conv_{i}']['kernel'].shape for i in range(4)]
  assert [s[-1] for s in d_convs] == [w, 2 * w, 4 * w, 1]
  assert d_convs[-1] == (2, 2, 4 * w, 1)
  assert d_plain['params']['Conv_2']['kernel'].shape == (4, 4, 2 * w, 1)
  # The new layer and its BatchNorm.
  assert len(d_params) == len(d_plain['params']) + 2
  z = jax.random.normal(jax.random.key(1), (2, Z_DIM))
  images = generator.apply(g_vars, z, train=False)
  assert images.shape == (2, 16, 16, 3)
  assert float(jnp.abs(images).max()) <= 1.0
  assert discriminator.apply(d_vars, images, train=False).shape == (2,)


def test_leaky_g_has_the_same_parameters_and_other_outputs():
  g_relu, _ = models.create_models(_model_config())
  g_leaky, d_leaky = models.create_models(_model_config(g_leak=0.2))
  assert g_leaky.leak == 0.2
  # D is not changed by the G variant.
  assert d_leaky == models.create_models(_model_config())[1]
  z = jax.random.normal(jax.random.key(1), (2, Z_DIM))
  variables = g_relu.init(KEY, z, train=False)
  assert _shapes(g_leaky.init(KEY, z, train=False)) == _shapes(variables)
  relu = g_relu.apply(variables, z, train=False)
  leaky = g_leaky.apply(variables, z, train=False)
  assert leaky.shape == relu.shape
  # N(0, 0.02) weights make small outputs; the negative parts passed on by
  # the LeakyReLUs change them by a good part of their size.
  assert float(jnp.abs(leaky - relu).max()) > 0.2 * float(jnp.abs(relu).max())


@pytest.mark.parametrize(
    'model, message',
    [
        ({'base_size': 3}, 'model.base_size=3'),
        ({'g_leak': 1.5}, r'model.g_leak=1.5 must be in \[0, 1\)'),
        ({'g_leak': 0.2, 'norm': 'selu'}, "model.g_leak=0.2 .*'selu'"),
        (
            {'base_size': 2, 'name': 'keras_dcgan'},
            "model.base_size=2 is only supported by model.name='dcgan'",
        ),
    ],
)
def test_bad_variant_values_are_config_errors(model, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(_model_config(**model))


# ---------------------------------------------------------------------------
# The config and its data.


def test_dogs_config_reads_stanford_dogs_and_sets_its_variants():
  base = dogs64.get_config()
  assert (base.data.source, base.data.tfds_name) == ('tfds', 'stanford_dogs')
  assert base.data.tfds_split == 'train+test'
  assert (base.model.base_size, base.model.g_leak, base.batch_size) == (
      4,
      0.0,
      64,
  )
  assert base.eval.features == 'inception_v3'
  every = dogs64.get_config('dcgan2, leaky,batch32')
  assert (every.model.base_size, every.model.g_leak, every.batch_size) == (
      2,
      0.2,
      32,
  )
  assert dogs64.get_config('leaky').model.base_size == 4
  with pytest.raises(ValueError, match="unknown variant 'dcgan3'"):
    dogs64.get_config('dcgan3')


def test_unknown_variant_on_the_command_line_is_one_line():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [
          sys.executable,
          'main.py',
          '--config=configs/dogs64.py:dcgan3',
          '--workdir=unused',
      ],
      cwd=root,
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(os.environ, JAX_PLATFORMS='cpu'),
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().count('\n') == 0, proc.stderr
  assert "unknown variant 'dcgan3'; valid: dcgan2, leaky, batch32" in (
      proc.stderr
  )


def _tiny(config, workdir_data):
  config.num_train_steps = 2
  config.batch_size = 8
  config.log_every_steps = 1
  config.sample_every_steps = 2
  config.checkpoint_every_steps = 2
  config.data.image_size = 16
  config.data.min_size = 8
  config.data.tfds_data_dir = str(workdir_data)
  config.model.z_dim = Z_DIM
  config.model.g_width = 4
  config.model.d_width = 4
  config.eval.every_steps = -1
  return config


def _dog_examples(self, split, decoders=None, **kwargs):
  """Valid stanford_dogs examples of varied sizes, for tfds' mock_data.

  tfds' own random examples of stanford_dogs fail its bounding-box check
  (min > max), so the examples are drawn here and decoded as tfds would.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  del split, kwargs
  features = self.info.features
  rng = np.random.default_rng(0)
  examples = []
  for i in range(12):
    height, width = rng.integers(24, 48, size=2)
    examples.append(
        features.encode_example(
            {
                'image': rng.integers(
                    0, 256, (height, width, 3), dtype=np.uint8
                ),
                'image/filename': f'n02085620_{i}.jpg',
                'label': i % 120,
                'objects': {'bbox': [tfds.features.BBox(0.1, 0.2, 0.8, 0.9)]},
            }
        )
    )
  signature = jax.tree.map(
      lambda info: tf.TensorSpec(info.shape, info.dtype),
      features.get_serialized_info(),
      is_leaf=lambda x: hasattr(x, 'dtype'),
  )
  ds = tf.data.Dataset.from_generator(
      lambda: iter(examples), output_signature=signature
  )
  return ds.map(functools.partial(features.decode_example, decoders=decoders))


def test_dogs_config_trains_from_tfds_offline(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  config = _tiny(dogs64.get_config('dcgan2,leaky,batch32'), tmp_path / 'tfds')
  config.batch_size = 8
  workdir = tmp_path / 'run'
  with tfds.testing.mock_data(as_dataset_fn=_dog_examples):
    train.train_and_evaluate(config, str(workdir))
  steps = sorted(
      int(d) for d in os.listdir(workdir / 'checkpoints') if d.isdigit()
  )
  assert steps[-1] == 2


def test_absent_dogs_data_is_one_line_naming_how_to_prepare_it(tmp_path):
  config = _tiny(dogs64.get_config(), tmp_path / 'no_tfds')
  workdir = tmp_path / 'run'
  with pytest.raises(config_lib.ConfigError) as error:
    train.train_and_evaluate(config, str(workdir))
  message = str(error.value)
  assert '\n' not in message
  assert "tfds 'stanford_dogs'" in message
  assert 'tfds build stanford_dogs --data_dir=DIR' in message
  assert 'data.tfds_download=True' in message
  assert not workdir.exists()


def test_reference_cache_key_names_the_tfds_data_set():
  dogs = dogs64.get_config()
  cats = dogs64.get_config()
  cats.data.tfds_name = 'cats_vs_dogs'
  cats.data.tfds_labels = (0,)
  only_train = dogs64.get_config()
  only_train.data.tfds_split = 'train'
  keys = {scorer.dataset_identity(c) for c in (dogs, cats, only_train)}
  assert len(keys) == 3
  assert 'stanford_dogs' in scorer.dataset_identity(dogs)
