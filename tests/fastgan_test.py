"""FastGAN: generator and discriminator shapes, blocks and losses by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import inference
from catgan_jax import losses
from catgan_jax import metrics_log
from catgan_jax import models
from catgan_jax import parallel
from catgan_jax import train
from catgan_jax.models import fastgan
import helpers


def _sigmoid(x):
  return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize('name', fastgan.NAMES)
@pytest.mark.parametrize('size', [64, 128, 256])
def test_generator_makes_images_of_each_size(name, size):
  config = helpers.config_with(
      **{
          'model.name': name,
          'data.image_size': size,
          'model.g_width': 4,
          'model.feature_random_init': True,
      }
  )
  generator, _ = models.create_models(config)
  z = jnp.ones((2, config.model.z_dim))
  variables = jax.eval_shape(
      lambda: generator.init(jax.random.key(0), z, train=False)
  )
  out = jax.eval_shape(lambda v: generator.apply(v, z, train=False), variables)
  assert out.shape == (2, size, size, 3) and out.dtype == jnp.float32
  # SLE gates at 64 px and up: se_64 always, se_128 / se_256 with the size.
  sle = {k for k in variables['params'] if k.startswith('se_')}
  assert sle == {f'se_{s}' for s in (64, 128, 256) if s <= size}
  noise = [k for k in jax.tree_util.tree_flatten_with_path(variables)[0]]
  has_noise = any('NoiseInjection' in jax.tree_util.keystr(p) for p, _ in noise)
  assert has_noise == (name == 'fastgan')


def test_widths_follow_the_reference():
  nfc = fastgan.widths(128)
  assert [nfc[s] for s in (4, 8, 16, 32, 64, 128, 256)] == [
      2048,
      1024,
      512,
      256,
      256,
      128,
      64,
  ]


def test_glu_gates_the_first_half_by_the_second():
  x = jnp.asarray([[1.0, 2.0, 3.0, -4.0]])
  np.testing.assert_allclose(
      fastgan.glu(x),
      [[1.0 * _sigmoid(3.0), 2.0 * _sigmoid(-4.0)]],
      rtol=1e-6,
  )


def test_sle_scales_the_big_map_by_a_gate_of_the_small_one():
  # Rank-1 kernels: spectral normalisation divides each by its one nonzero
  # entry's magnitude (one power iteration finds it exactly), so the gate
  # of channel 0 is sigmoid(swish(small[0, 0, 0])) and channel 1's is
  # sigmoid(swish(0)) = 1/2.
  small = jnp.zeros((1, 8, 8, 1)).at[0, :2, :2, 0].set(3.0)  # Pools to 3.
  big = jnp.full((1, 2, 2, 2), 2.0)
  block = fastgan.SLEBlock()
  variables = block.init(jax.random.key(0), small, big, train=False)
  params = jax.tree.map(jnp.zeros_like, variables['params'])
  params['Conv_0']['kernel'] = params['Conv_0']['kernel'].at[0, 0, 0, 0].set(-5)
  params['Conv_1']['kernel'] = params['Conv_1']['kernel'].at[0, 0, 0, 0].set(2)
  out = block.apply(
      {'params': params, 'batch_stats': variables['batch_stats']},
      small,
      big,
      train=False,
  )
  pre = -3.0  # sign(-5) * 3.
  gate0 = _sigmoid(pre * _sigmoid(pre))
  np.testing.assert_allclose(out[0, :, :, 0], 2.0 * gate0, rtol=1e-5)
  np.testing.assert_allclose(out[0, :, :, 1], 2.0 * 0.5, rtol=1e-5)


def test_noise_injection_draws_only_from_a_noise_stream():
  x = jnp.ones((2, 4, 4, 3))
  layer = fastgan.NoiseInjection()
  params = {'params': {'weight': jnp.asarray([0.5])}}
  np.testing.assert_array_equal(layer.apply(params, x), x)
  noisy = layer.apply(params, x, rngs={'noise': jax.random.key(1)})
  diff = np.asarray(noisy - x)
  # One noise map per image, shared by the channels.
  assert np.abs(diff).max() > 0
  np.testing.assert_array_equal(diff[..., 0], diff[..., 2])
  assert not np.array_equal(diff[0], diff[1])


def test_sampling_output_is_clipped_training_output_is_not():
  generator = fastgan.Generator(image_size=16, ngf=2, lite=True)
  z = jax.random.normal(jax.random.key(0), (2, 8))

  @jax.jit
  def outputs(key):
    variables = generator.init(key, z, train=False)
    params = jax.tree.map(lambda p: p * 50.0, variables['params'])
    variables = {**variables, 'params': params}
    sample = generator.apply(variables, z, train=False)
    raw, _ = generator.apply(variables, z, train=True, mutable=['batch_stats'])
    return sample, raw

  sample, raw = outputs(jax.random.key(1))
  assert float(jnp.abs(sample).max()) <= 1.0
  assert float(jnp.abs(raw).max()) > 1.0


def test_standing_statistics_keep_spectral_norm_state():
  # FastGAN's BatchNorm layers follow spectrally normalised convolutions:
  # the standing statistics average the former and keep the latter's u.
  generator = fastgan.Generator(image_size=16, ngf=2, lite=True)
  z = jnp.ones((2, 8))
  variables = generator.init(jax.random.key(0), z, train=False)
  stats = jax.jit(
      lambda v: inference.standing_batch_stats(
          generator, v['params'], v['batch_stats'], jax.random.key(1), 2, 4, 8
      )
  )(variables)
  before = jax.tree_util.tree_flatten_with_path(variables['batch_stats'])[0]
  after = dict(jax.tree_util.tree_flatten_with_path(stats)[0])
  for path, value in before:
    new = after[path]
    assert np.isfinite(np.asarray(new)).all(), path
    name = jax.tree_util.keystr(path)
    if name.endswith("['mean']") or name.endswith("['var']"):
      assert not np.array_equal(new, value), name  # From the 2 passes.
    else:
      np.testing.assert_array_equal(new, value, err_msg=name)


# --- FastGAN's own discriminator ----------------------------------------------


def _discriminator_config(size, **overrides):
  return helpers.config_with(
      **{
          'model.name': 'fastgan',
          'model.discriminator': 'fastgan',
          'model.feature_random_init': True,
          'data.image_size': size,
          'model.g_width': 2,
          'model.d_width': 4,
          **overrides,
      }
  )


@pytest.mark.parametrize('size', [64, 128, 256])
def test_discriminator_gives_5x5_logits_of_both_branches(size):
  _, discriminator = models.create_models(_discriminator_config(size))
  assert isinstance(discriminator, fastgan.Discriminator)
  x = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(
      lambda: discriminator.init(jax.random.key(0), x, train=False)
  )
  logits, (both, loss) = jax.eval_shape(
      lambda v: (
          discriminator.apply(v, x, train=False),
          discriminator.apply(v, x, train=False, part=jnp.asarray(1)),
      ),
      variables,
  )
  # rf_big and rf_small: 4x4 valid convs of 8 px maps, 5x5 each.
  assert logits.shape == both.shape == (2, 50) and loss.shape == ()
  assert set(variables) == {'params', 'batch_stats', 'frozen'}
  params = variables['params']
  assert {'decoder_big', 'decoder_small', 'decoder_part'} <= set(params)
  # One DownBlockComp per halving down to 8 px; SLE from the 8x map.
  downs = {k for k in params if k.startswith('down_')}
  assert downs == {f'down_{s}' for s in (8, 16, 32, 64, 128) if s < size}
  sle = {k for k in params if k.startswith('se_')}
  assert sle == {f'se_{8 * s}_{s}' for s in (8, 16, 32) if 8 * s <= size}


@pytest.mark.parametrize('size', [8, 16, 64, 128])
def test_decoder_rebuilds_an_image_of_its_side(size):
  decoder = fastgan.SimpleDecoder(size, width=8)
  x = jnp.zeros((2, 8, 8, 5))
  out, variables = jax.eval_shape(
      lambda: decoder.init_with_output(jax.random.key(0), x, train=False)
  )
  assert out.shape == (2, size, size, 3)
  # A conv-BN-GLU block per doubling from 8 px (the reference's 4 blocks to
  # 128 px), then the conv to RGB.
  params = variables['params']
  blocks = {8: 0, 16: 1, 64: 3, 128: 4}[size]
  assert sum(k.startswith('BatchNorm') for k in params) == blocks
  assert sum(k.startswith('Conv') for k in params) == blocks + 1
  assert params[f'Conv_{blocks}']['kernel'].shape[-1] == 3
  if blocks:  # 2 x the reference's 128 channels (GLU) at width 64 / 8.
    assert params['Conv_0']['kernel'].shape[-1] == 2 * 128 // 8


def test_lpips_of_maps_by_hand():
  # Position 0: (3, 4) against (0, 2): unit vectors (0.6, 0.8) and (0, 1),
  # squared distance 0.36 + 0.04 = 0.4; position 1: equal directions, 0.
  a = jnp.asarray([[[[3.0, 4.0], [1.0, 1.0]]]])  # [1, 1, 2, 2]
  b = jnp.asarray([[[[0.0, 2.0], [2.0, 2.0]]]])
  # A second map, 1x1: (1, 0) against (0, 1): distance 2.
  c = jnp.asarray([[[[1.0, 0.0]]]])
  d = jnp.asarray([[[[0.0, 1.0]]]])
  out = fastgan.lpips_of_maps([a, c], [b, d])
  np.testing.assert_allclose(out, [(0.4 + 0.0) / 2 + 2.0], rtol=1e-6)


def test_quadrants_and_nearest_resize_follow_train_py():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  for part, (rows, cols) in enumerate(
      [(slice(0, 2), slice(0, 2)), (slice(0, 2), slice(2, 4))]
      + [(slice(2, 4), slice(0, 2)), (slice(2, 4), slice(2, 4))]
  ):
    np.testing.assert_array_equal(fastgan.quadrant(x, part), x[:, rows, cols])
  # torch's 'nearest': down by 2 keeps the even pixels, up repeats.
  np.testing.assert_array_equal(
      fastgan.resize_nearest(x, 2)[0, :, :, 0], [[0, 2], [8, 10]]
  )
  np.testing.assert_array_equal(
      fastgan.resize_nearest(x[:, :2, :2], 4)[0, 0, :, 0], [0, 0, 1, 1]
  )


def test_random_margin_hinge_by_hand():
  loss = losses.get_loss('hinge_random_margin')
  key = jax.random.key(3)
  real = jnp.asarray([0.5, 2.0, -1.0])
  fake = jnp.asarray([-2.0, 0.0, 0.1])
  k_real, k_fake = jax.random.split(key)
  m_real = 0.8 + 0.2 * np.asarray(jax.random.uniform(k_real, (3,)))
  m_fake = 0.8 + 0.2 * np.asarray(jax.random.uniform(k_fake, (3,)))
  expected = (
      np.maximum(m_real - real, 0).mean() + np.maximum(m_fake + fake, 0).mean()
  )
  value = loss.d_value(real, fake, None, key)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  # The margins lie in [0.8, 1): a real logit of 2 costs nothing, one of
  # 0.5 between 0.3 and 0.5.
  assert 0.8 <= m_real.min() and m_real.max() < 1.0
  np.testing.assert_allclose(loss.g_loss(None, fake, None), -fake.mean())


@pytest.fixture(scope='module')
def fastgan64_run(tmp_path_factory):
  """configs/fastgan64.py at tiny width: its initial state and 2 steps."""
  config = helpers.override(
      helpers.load_config('fastgan64'),
      **{
          'data.source': 'synthetic',
          'data.num_synthetic': 16,
          'data.image_size': 16,
          'model.g_width': 2,
          'model.d_width': 4,
          'model.z_dim': 8,
          'model.feature_random_init': True,
          'batch_size': 4,
          'num_train_steps': 2,
          'log_every_steps': 1,
          'sample_every_steps': 100,
          'checkpoint_every_steps': 100,
          'eval.every_steps': -1,
      },
  )
  workdir = str(tmp_path_factory.mktemp('fastgan64'))
  initial = train.build(config, parallel.create_mesh()).state
  final = train.train_and_evaluate(config, workdir)
  return initial, final, metrics_log.MetricsLog(workdir).read()


def _flat(tree):
  leaves = jax.tree_util.tree_flatten_with_path(parallel.fetch(tree))[0]
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def test_fastgan64_trains_its_decoders_not_the_feature_network(fastgan64_run):
  initial, final, logged = fastgan64_run
  assert int(final.step) == 2
  before, after = _flat(initial.d.frozen), _flat(final.d.frozen)
  assert before and before.keys() == after.keys()
  for name, value in before.items():
    np.testing.assert_array_equal(after[name], value, err_msg=name)
  trained, start = _flat(final.d.params), _flat(initial.d.params)
  for decoder in ('decoder_big', 'decoder_small', 'decoder_part'):
    assert any(
        decoder in k and not np.array_equal(v, start[k])
        for k, v in trained.items()
    ), decoder
  rows = [r for r in logged if 'reconstruction' in r]
  assert rows, logged
  for row in rows:
    # Three decoders x 4 images, each distance in [0, 4 maps x 4].
    assert 0 < row['reconstruction'] < 3 * 4 * 16
    assert np.isfinite(row['d_loss']) and np.isfinite(row['g_loss'])
