"""The projected discriminator: shapes, frozen parts, resume, start-up errors."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from catgan_jax import config_lib
from catgan_jax import models
from catgan_jax import parallel
from catgan_jax import train
from catgan_jax.evaluation import mobilenet_v2
from catgan_jax.models import projected

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tiny projected GAN: FastGAN-lite at 16 px, the feature network at 64 px,
# randomly initialised (tests only).
TINY = {
    'model.name': 'fastgan_lite',
    'model.feature_random_init': True,
    'model.interp_size': 64,
    'model.proj_cout': 4,
    'model.g_width': 2,
    'model.d_width': 4,
    'loss.name': 'hinge',
    'data.diffaugment': 'color,translation,cutout',
    'batch_size': 4,
    'num_train_steps': 2,
    'sample_every_steps': 100,
}


def _config(**overrides):
  return helpers.config_with(**{**TINY, **overrides})


def _abstract_d(config, size):
  _, discriminator = models.create_models(config)
  x = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(
      lambda: discriminator.init(jax.random.key(0), x, train=False)
  )
  logits = jax.eval_shape(
      lambda v: discriminator.apply(v, x, train=False), variables
  )
  return variables, logits


@pytest.mark.parametrize(
    'size, patches',
    # Below 224 px the images are resized to 224: maps of 112, 56, 28 and
    # 14 px, each down to 7, then 4x4 logits. 256 px is not resized: maps
    # of 128 ... 16 px down to 8, then 5x5.
    [(64, 4 * 16), (128, 4 * 16), (256, 4 * 25)],
)
def test_patch_logits_of_every_mini_discriminator(size, patches):
  config = _config(**{'data.image_size': size, 'model.interp_size': 224})
  variables, logits = _abstract_d(config, size)
  assert logits.shape == (2, patches) and logits.dtype == jnp.float32
  assert set(variables) == {'params', 'batch_stats', 'frozen'}
  # Nothing of the feature network or the projections is trainable.
  assert all(k.startswith('mini_disc_') for k in variables['params'])
  assert 'features' in variables['frozen']


@pytest.mark.parametrize(
    'proj_type, expand, channels',
    [
        (0, True, [24, 32, 96, 320]),  # MobileNetV2's stages.
        (1, True, [8, 16, 32, 64]),  # CCM: cout, 2, 4, 8 cout.
        (1, False, [8, 8, 8, 8]),
        (2, True, [8, 8, 16, 32]),  # CSM halves all but the finest.
        (2, False, [8, 8, 8, 8]),
    ],
)
def test_projection_channels_follow_projector_py(proj_type, expand, channels):
  class Project(nn.Module):

    @nn.compact
    def __call__(self, maps):
      return projected.project(maps, proj_type, 8, expand)

  maps = [
      jnp.zeros((1, s, s, c)) for s, c in zip((8, 4, 2, 1), (24, 32, 96, 320))
  ]
  out = jax.eval_shape(
      lambda: Project().init_with_output(jax.random.key(0), maps)[0]
  )
  assert [o.shape[-1] for o in out] == channels
  # CSM doubles each map's side (its 2x upsampling).
  scale = 2 if proj_type == 2 else 1
  assert [o.shape[1] for o in out] == [scale * s for s in (8, 4, 2, 1)]


def test_bilinear_upsampling_aligns_corners():
  x = jnp.asarray([0.0, 3.0]).reshape(1, 2, 1, 1) * jnp.ones((1, 2, 2, 1))
  out = projected.upsample_bilinear_2x(x)
  # align_corners=True samples at 0, 1/3, 2/3, 1 of the way.
  np.testing.assert_allclose(out[0, :, 0, 0], [0.0, 1.0, 2.0, 3.0], atol=1e-6)
  np.testing.assert_allclose(out[0, 0, :, 0], [0.0] * 4, atol=1e-6)


def _flat(tree):
  leaves = jax.tree_util.tree_flatten_with_path(parallel.fetch(tree))[0]
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Initial state, a 2-step run, and a 1-step run resumed to 2 steps."""
  config = _config()
  initial = train.build(config, parallel.create_mesh()).state
  full_dir = str(tmp_path_factory.mktemp('full'))
  full = train.train_and_evaluate(config, full_dir)
  resumed_dir = str(tmp_path_factory.mktemp('resumed'))
  train.train_and_evaluate(_config(num_train_steps=1), resumed_dir)
  resumed = train.train_and_evaluate(config, resumed_dir)
  return initial, full, resumed


def test_frozen_parts_are_bit_identical_after_training(runs):
  initial, full, _ = runs
  before, after = _flat(initial.d.frozen), _flat(full.d.frozen)
  assert before.keys() == after.keys()
  assert any('features' in k for k in before)
  assert any('csm' in k for k in before)
  for name, value in before.items():
    np.testing.assert_array_equal(after[name], value, err_msg=name)
  # ... while the mini-discriminators did train, and the optimiser holds
  # only their parameters.
  trained = _flat(full.d.params)
  assert any(
      not np.array_equal(v, _flat(initial.d.params)[k])
      for k, v in trained.items()
  )
  opt_leaves = sum(np.size(x) for x in jax.tree.leaves(full.d.opt_state))
  params = sum(np.size(x) for x in jax.tree.leaves(full.d.params))
  frozen = sum(np.size(x) for x in jax.tree.leaves(full.d.frozen))
  assert opt_leaves < 2 * params + 16 < frozen


def test_resume_restores_the_projections_exactly(runs):
  _, full, resumed = runs
  for net in ('g', 'd'):
    for part in ('params', 'batch_stats', 'frozen'):
      a = _flat(getattr(getattr(full, net), part))
      b = _flat(getattr(getattr(resumed, net), part))
      assert a.keys() == b.keys(), (net, part)
      for name, value in a.items():
        np.testing.assert_array_equal(b[name], value, err_msg=(net, part, name))


def test_feature_path_problems_are_one_line_errors(tmp_path):
  bad = tmp_path / 'weights.tflite'
  bad.write_bytes(b'not a flatbuffer')
  for path, message in (
      ('', "model.feature_path=''"),
      (str(tmp_path / 'absent.tflite'), 'does not exist'),
      (str(bad), 'is not a MobileNetV2 weights file'),
  ):
    config = _config(**{'model.feature_random_init': False})
    config.model.feature_path = path
    with pytest.raises(config_lib.ConfigError) as e:
      config_lib.validate(config)
    assert message in str(e.value) and '\n' not in str(e.value)
    assert 'model.feature_path=/path/to/' in str(e.value)


def _main(tmp_path, *flags):
  workdir = tmp_path / 'run'
  proc = subprocess.run(
      [
          sys.executable,
          'main.py',
          '--config=configs/test.py',
          f'--workdir={workdir}',
          *[f'--config.{k}={v}' for k, v in TINY.items()],
          *flags,
      ],
      cwd=ROOT,
      env=dict(os.environ, JAX_PLATFORMS='cpu'),
      capture_output=True,
      text=True,
      timeout=300,
  )
  errors = [l for l in proc.stderr.splitlines() if 'main.py: error:' in l]
  return proc, errors, workdir


def test_bad_feature_path_exits_2_with_one_line(tmp_path):
  proc, errors, workdir = _main(
      tmp_path,
      '--config.model.feature_random_init=False',
      f'--config.model.feature_path={tmp_path / "absent.tflite"}',
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert len(errors) == 1 and 'Traceback' not in proc.stderr
  assert 'model.feature_path=' in errors[0] and 'does not exist' in errors[0]
  assert not workdir.exists()


def test_scoring_with_the_discriminators_network_is_refused(tmp_path):
  proc, errors, workdir = _main(
      tmp_path,
      '--config.eval.every_steps=0',
      '--config.eval.features=mobilenet_v2',
      f'--config.eval.features_path={tmp_path / "any.tflite"}',
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert len(errors) == 1 and 'Traceback' not in proc.stderr
  assert "eval.features='mobilenet_v2'" in errors[0]
  assert 'mobilenet_v2_inat' in errors[0]
  assert 'eval.allow_same_network=True' in errors[0]
  assert not workdir.exists()


def test_fastgan_discriminator_is_refused_its_reconstruction_network():
  config = _config(**{'eval.every_steps': 0, 'eval.features': 'mobilenet_v2'})
  with config.unlocked():
    config.model.discriminator = 'fastgan'
  with pytest.raises(config_lib.ConfigError, match='fastgan discriminator'):
    config_lib.validate(config)


def test_same_network_is_allowed_when_asked_and_other_scorers_pass():
  for overrides in (
      {'eval.features': 'mobilenet_v2', 'eval.allow_same_network': True},
      {'eval.features': 'mobilenet_v2_inat'},
      {'eval.features': 'inception_v3'},
  ):
    config_lib.validate(_config(**{'eval.every_steps': 0, **overrides}))
  # A discriminator that sees no feature network may use any scorer.
  config_lib.validate(
      helpers.config_with(
          **{'eval.every_steps': 0, 'eval.features': 'mobilenet_v2'}
      )
  )


@pytest.mark.skipif(not helpers.HAS_MOBILENET, reason='shared/models is absent')
def test_stages_of_the_loaded_network_are_the_scorers_layers():
  # The scorer's features are Conv_1, ReLU6 and the mean over the last
  # stage's map: the stages run the very same layers.
  params = projected.load_feature_params(helpers.MOBILENET)
  full = mobilenet_v2.load_tflite_params(helpers.MOBILENET)
  x = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3), minval=-1)

  @jax.jit
  def both(x):
    maps = mobilenet_v2.MobileNetV2Stages().apply({'params': params}, x)
    pool = mobilenet_v2.MobileNetV2().apply({'params': full}, x)
    conv_1 = nn.Conv(1280, (1, 1)).apply({'params': full['Conv_1']}, maps[-1])
    return maps, pool, jnp.mean(jnp.clip(conv_1, 0, 6), axis=(1, 2))

  maps, pool, from_stages = both(x)
  assert [m.shape[1:] for m in maps] == [
      (16, 16, 24),
      (8, 8, 32),
      (4, 4, 96),
      (2, 2, 320),
  ]
  np.testing.assert_allclose(from_stages, pool, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('stride, side', [(1, 7), (1, 8), (2, 7), (2, 8)])
def test_depthwise_taps_and_their_gradients_equal_lax(stride, side):
  x = jax.random.normal(jax.random.key(1), (2, side, side, 5))
  kernel = jax.random.normal(jax.random.key(2), (3, 3, 1, 5))
  pads = [p[:2] for p in mobilenet_v2._same_pads((side, side), stride)]

  def lax_conv(x, kernel):
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        (stride, stride),
        pads,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
        feature_group_count=5,
    )

  ours = lambda x, k: mobilenet_v2.depthwise_3x3(x, k, stride)
  np.testing.assert_allclose(ours(x, kernel), lax_conv(x, kernel), atol=1e-5)
  loss = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
  got = jax.grad(loss(ours), argnums=(0, 1))(x, kernel)
  want = jax.grad(loss(lax_conv), argnums=(0, 1))(x, kernel)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
