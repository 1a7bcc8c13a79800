"""R3GAN: networks, R2 penalty, schedules, and short real runs.

The full-size networks are only traced (`jax.eval_shape`); everything that
runs does so at widths 16-48 on 16-32 px images.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import config_lib
from catgan_jax import losses
from catgan_jax import metrics_log
from catgan_jax import models
from catgan_jax import schedules
from catgan_jax import state as state_lib
from catgan_jax import step as step_lib
from catgan_jax import train
from catgan_jax.models import r3gan
from configs import default
from configs import r3gan64
from configs import r3gan128
from configs import test as test_config
from tests.fixtures import run_steps

RNG = np.random.default_rng(0)
FFHQ256_WIDTHS = (768, 768, 768, 768, 384, 192, 96)


def _shapes(config):
  """Output shapes and variables of G and D, traced only."""
  generator, discriminator = models.create_models(config)
  size = config.data.image_size
  z = jax.ShapeDtypeStruct((2, config.model.z_dim), jnp.float32)
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  g_vars = jax.eval_shape(
      functools.partial(generator.init, train=False), jax.random.key(0), z
  )
  d_vars = jax.eval_shape(
      functools.partial(discriminator.init, train=False), jax.random.key(0), x
  )
  images = jax.eval_shape(
      functools.partial(generator.apply, train=True), g_vars, z
  )
  logits = jax.eval_shape(
      functools.partial(discriminator.apply, train=True), d_vars, x
  )
  return images.shape, logits.shape, g_vars, d_vars


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


# --- Networks -----------------------------------------------------------------


@pytest.mark.parametrize(
    'size,widths', [(64, None), (128, None), (256, FFHQ256_WIDTHS)]
)
def test_full_size_output_shapes(size, widths):
  config = (r3gan64 if size == 64 else r3gan128).get_config()
  config.data.image_size = size
  if widths:
    config.model.r3gan_widths = widths
  image_shape, logit_shape, g_vars, d_vars = _shapes(config)
  assert image_shape == (2, size, size, 3)
  assert logit_shape == (2,)
  # No normalisation: nothing but parameters.
  assert set(g_vars) == set(d_vars) == {'params'}


def _block_params(channels, expansion=2):
  """Parameters of one R3GAN residual block (convs without bias)."""
  hidden = channels * expansion
  return channels * hidden + hidden * 16 * 9 + hidden * channels + 2 * hidden


def test_ffhq64_parameter_counts_follow_the_reference_layers():
  # R3GAN/Networks.py at the FFHQ-64 preset: widths 768 x 4, 384; 2 blocks
  # per stage; the 3x3 convs have 16 channels per group.
  _, _, g_vars, d_vars = _shapes(r3gan64.get_config())
  g = (
      4 * 4 * 768
      + 64 * 768  # GenerativeBasis: basis + Linear(z)
      + 8 * _block_params(768)
      + 768 * 384  # 1x1 conv of the 32->64 upsampling
      + 2 * _block_params(384)
      + 384 * 3
  )  # AggregationLayer
  d = (
      3 * 384
      + 2 * _block_params(384)
      + 384 * 768
      + 8 * _block_params(768)
      + 768 * 16
      + 768
  )  # DiscriminativeBasis + Linear
  assert _count(g_vars) == g == 22_429_824
  assert _count(d_vars) == d == 22_381_440


def _tiny_config(size=32, widths=(32, 32, 32, 16), **overrides):
  config = r3gan64.get_config()
  config.data.image_size = size
  config.model.r3gan_widths = widths
  config.update_from_flattened_dict(overrides)
  return config


def test_small_networks_run_and_sampling_is_clipped():
  config = _tiny_config()
  generator, discriminator = models.create_models(config)
  z = jnp.asarray(RNG.normal(size=(3, 64)), jnp.float32)
  g_vars = generator.init(jax.random.key(1), z, train=False)
  d_vars = discriminator.init(
      jax.random.key(2), jnp.zeros((1, 32, 32, 3)), train=False
  )
  # Scale the RGB output layer (the last conv) up so that some raw outputs
  # leave [-1, 1].
  params = dict(g_vars['params'])
  last = max(
      (k for k in params if k.startswith('Conv_')),
      key=lambda k: int(k.split('_')[1]),
  )
  assert params[last]['kernel'].shape[-1] == 3
  params[last] = {'kernel': params[last]['kernel'] * 50}
  g_vars = {'params': params}
  raw = generator.apply(g_vars, z, train=True)
  shown = generator.apply(g_vars, z, train=False)
  assert raw.shape == (3, 32, 32, 3) and raw.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(raw))) > 1.0
  np.testing.assert_array_equal(shown, jnp.clip(raw, -1, 1))
  logits = discriminator.apply(d_vars, raw, train=True)
  assert logits.shape == (3,) and bool(jnp.all(jnp.isfinite(logits)))


def test_width_scales_with_g_width_and_d_width():
  config = _tiny_config(size=16, widths=(64, 64, 32))
  config.model.g_width, config.model.d_width = 32, 16
  generator, discriminator = models.create_models(config)
  assert generator.widths == (32, 32, 16)
  assert discriminator.widths == (16, 16, 8)


@pytest.mark.parametrize(
    'overrides,message',
    [
        ({'model.r3gan_widths': (32, 32)}, 'needs 4'),
        ({'model.r3gan_group_channels': 24}, 'does not divide'),
        ({'model.r3gan_blocks': 0}, 'r3gan_blocks=0'),
        ({'model.spectral_norm': True}, 'spectral_norm=True is only used by'),
        ({'model.d_norm': 'layer'}, "d_norm='layer' is only used by"),
    ],
)
def test_bad_model_fields_are_config_errors(overrides, message):
  config = _tiny_config(**overrides)
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config)


def test_each_residual_block_is_the_identity_at_init():
  x = jnp.asarray(RNG.normal(size=(2, 8, 8, 32)), jnp.float32)
  block = r3gan.ResidualBlock(expansion=2, group_channels=16, num_blocks=10)
  variables = block.init(jax.random.key(3), x)
  np.testing.assert_array_equal(block.apply(variables, x), x)
  # The branch is not dead: its first convs are the fix-up-scaled MSR init.
  kernel = variables['params']['Conv_0']['kernel']  # [1, 1, 32, 64]
  expected = r3gan.ACTIVATION_GAIN * 10**-0.25 / math.sqrt(32)
  assert float(jnp.std(kernel)) == pytest.approx(expected, rel=0.05)
  grouped = variables['params']['Conv_1']['kernel']  # [3, 3, 16, 64]
  assert grouped.shape == (3, 3, 16, 64)  # 4 groups of 16
  assert float(jnp.std(grouped)) == pytest.approx(
      r3gan.ACTIVATION_GAIN * 10**-0.25 / math.sqrt(9 * 16), rel=0.05
  )


def test_every_block_of_both_networks_starts_as_the_identity():
  config = _tiny_config()
  _, _, g_vars, d_vars = _shapes(config)
  generator, discriminator = models.create_models(config)
  z = jnp.zeros((1, 64))
  for module, dummy, abstract in (
      (generator, z, g_vars),
      (discriminator, jnp.zeros((1, 32, 32, 3)), d_vars),
  ):
    params = module.init(jax.random.key(4), dummy, train=False)['params']
    blocks = [k for k in params if k.startswith('ResidualBlock_')]
    assert len(blocks) == 2 * 4  # 2 per stage, 4 stages.
    for name in blocks:
      np.testing.assert_array_equal(params[name]['Conv_2']['kernel'], 0.0)
    assert _count(params) == _count(abstract)


def _upfirdn2d(x, up, down, pad, gain):
  """StyleGAN2's upfirdn2d_ref of one [H, W] channel, [1, 3, 3, 1] filter."""
  taps = np.convolve([1, 2, 1], [1, 1])
  kernel = np.outer(taps, taps) / np.sum(np.outer(taps, taps)) * gain
  h, w = x.shape
  stuffed = np.zeros((h * up, w * up))
  stuffed[::up, ::up] = x
  padded = np.pad(stuffed, (pad, pad))
  out_h = padded.shape[0] - 3
  out_w = padded.shape[1] - 3
  out = np.array(
      [
          [np.sum(padded[i : i + 4, j : j + 4] * kernel) for j in range(out_w)]
          for i in range(out_h)
      ]
  )
  return out[::down, ::down]


def test_resamplers_match_the_reference_upfirdn2d():
  x = RNG.normal(size=(1, 6, 6, 2)).astype(np.float32)
  up = np.asarray(r3gan.upsample(jnp.asarray(x)))
  down = np.asarray(r3gan.downsample(jnp.asarray(x)))
  assert up.shape == (1, 12, 12, 2) and down.shape == (1, 3, 3, 2)
  for c in range(2):
    # upsample2d: gain up^2 = 4, padding ((4 + 1) // 2, (4 - 2) // 2).
    np.testing.assert_allclose(
        up[0, :, :, c],
        _upfirdn2d(x[0, :, :, c], 2, 1, (2, 1), 4.0),
        rtol=1e-5,
        atol=1e-6,
    )
    # downsample2d: padding ((4 - 2 + 1) // 2, (4 - 2) // 2).
    np.testing.assert_allclose(
        down[0, :, :, c],
        _upfirdn2d(x[0, :, :, c], 1, 2, (1, 1), 1.0),
        rtol=1e-5,
        atol=1e-6,
    )


# --- R2 -------------------------------------------------------------------------


def test_r2_penalty_of_linear_critic():
  # D(x) = sum(w * x) has input gradient w for every image: R2 = ||w||^2.
  w = jnp.asarray(RNG.normal(size=(4, 4, 3)), jnp.float32)
  fake = jnp.asarray(RNG.normal(size=(5, 4, 4, 3)), jnp.float32)
  critic = lambda x: jnp.sum(w * x, axis=(1, 2, 3))
  np.testing.assert_allclose(
      losses.r2_penalty(critic, fake), float(jnp.sum(w**2)), rtol=1e-5
  )


def test_r2_penalty_is_per_sample_and_on_the_fakes():
  # Critic 0.5 ||x||^2: grad x, so R2 = mean_i ||fake_i||^2 = (48 + 12) / 2.
  fake = jnp.stack([jnp.ones((4, 4, 3)), jnp.full((4, 4, 3), 0.5)])
  critic = lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3))
  np.testing.assert_allclose(losses.r2_penalty(critic, fake), 30.0, rtol=1e-6)


def _step_config(**overrides):
  config = test_config.get_config()
  config.model.g_width = config.model.d_width = 4
  config.model.z_dim = 8
  config.model.norm = 'none'
  config.update_from_flattened_dict(overrides)
  return config


def _one_step(config, step=0):
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  state = state.replace(step=jnp.asarray(step, jnp.int32))
  batch = jax.random.randint(jax.random.key(0), (8, 16, 16, 3), 0, 256).astype(
      jnp.uint8
  )
  new_state, metrics = jax.jit(step_lib.make_train_step(config, g, d))(
      state, batch
  )
  return state, new_state, jax.device_get(metrics)


def test_r2_weight_adds_half_its_weight_times_r2_to_the_d_loss():
  _, _, plain = _one_step(_step_config(**{'loss.name': 'rsgan'}))
  # A large weight: this tiny critic's R2 is ~1e-5, far below the loss.
  _, _, with_r2 = _one_step(
      _step_config(**{'loss.name': 'rsgan', 'loss.r2_weight': 1000.0})
  )
  assert 'r2' not in plain and with_r2['r2'] > 0
  np.testing.assert_allclose(
      with_r2['d_loss'] - plain['d_loss'],
      0.5 * 1000.0 * with_r2['r2'],
      rtol=1e-3,
  )


def test_bfloat16_r3gan_step_is_finite():
  # The grouped convs' custom gradient keeps the compute dtype (bfloat16)
  # through the R1/R2 second derivatives.
  config = _tiny_config(
      size=16, widths=(32, 32, 16), **{'model.dtype': 'bfloat16'}
  )
  _, new, metrics = _one_step(config)
  for key in ('d_loss', 'g_loss', 'r1', 'r2', 'd_grad_norm', 'g_grad_norm'):
    assert np.isfinite(metrics[key]), key
  assert all(
      leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(new.g.params)
  )


# --- Schedules ------------------------------------------------------------------


def _reference_cosine(cur_nimg, base_value, total_nimg, final_value):
  """training_loop.cosine_decay_with_warmup of the reference, no warmup."""
  decay = 0.5 * (1 + np.cos(np.pi * cur_nimg / float(total_nimg)))
  value = base_value + (1 - decay) * (final_value - base_value)
  return float(np.where(cur_nimg > total_nimg, final_value, value))


@pytest.mark.parametrize(
    'start,end', [(2e-4, 5e-5), (0.9, 0.99), (0.0, 0.3), (0.0, 5e5)]
)
def test_cosine_ramp_is_the_references(start, end):
  ramp = schedules.cosine_ramp(start, end, 2e7)
  assert float(ramp(0)) == pytest.approx(start, rel=1e-6, abs=1e-12)
  assert float(ramp(1e7)) == pytest.approx((start + end) / 2, rel=1e-6)
  assert float(ramp(2e7)) == pytest.approx(end, rel=1e-6)
  assert float(ramp(3e7)) == pytest.approx(end, rel=1e-6)
  for n in (1e6, 5e6, 1.7e7):
    assert float(ramp(n)) == pytest.approx(
        _reference_cosine(n, start, 2e7, end), rel=1e-5
    )


def test_r3gan64_schedules_at_start_middle_and_end():
  config = r3gan64.get_config()
  steps = config.schedule.decay_nimg // config.batch_size  # 78,125
  expected = {  # (start, middle, end) of the FFHQ-64 preset.
      'lr': (2e-4, 1.25e-4, 5e-5),
      'b2': (0.9, 0.945, 0.99),
      'gamma': (2.0, 1.1, 0.2),
      'aug_p': (0.0, 0.15, 0.3),
      'half_life': (0.0, 2.5e5, 5e5),
  }
  for i, step in enumerate((0, steps / 2, steps)):
    hyper = schedules.optimizer_hyperparams(config, 'g', step)
    got = {
        'lr': config.optim.g_lr * hyper['lr_factor'],
        'b2': hyper['b2'],
        'gamma': config.loss.r1_weight * schedules.gamma_factor(config, step),
        'aug_p': schedules.aug_p(config, step, None),
        'half_life': schedules.ema_half_life(config, step),
    }
    for name, values in expected.items():
      assert float(got[name]) == pytest.approx(values[i], rel=1e-5, abs=1e-9), (
          name,
          step,
      )


def test_ema_decay_from_half_life():
  # Half-life of one batch: the old average counts half after one step.
  assert float(schedules.ema_decay_from_half_life(256, 256)) == 0.5
  assert float(schedules.ema_decay_from_half_life(5e5, 256)) == pytest.approx(
      0.5 ** (256 / 5e5)
  )
  # Half-life 0 (the ramp's start): the EMA is the current parameters.
  assert float(schedules.ema_decay_from_half_life(0.0, 256)) == 0.0


def test_schedules_are_off_by_default():
  config = default.get_config()
  assert schedules.optimizer_hyperparams(config, 'g', 10) == {}
  assert schedules.gamma_factor(config, 10) == 1.0
  assert schedules.ema_decay(config, 10) == config.train.ema_decay
  marker = object()
  assert schedules.aug_p(config, 10, marker) is marker
  assert schedules.logged_values(config, 10) == {}
  tx = state_lib.make_optimizer(config.optim, 'g')
  hp = tx.init({'w': jnp.zeros(2)}).hyperparams
  assert 'lr_factor' not in hp


def test_scheduled_step_sets_lr_b2_gamma_and_ema():
  batch = 8
  config = _step_config(
      **{
          'loss.name': 'rsgan',
          'loss.r1_weight': 1.0,
          'loss.r2_weight': 1.0,
          'optim.b1': 0.0,
          'optim.b2': 0.9,
          'schedule.decay_nimg': 100 * batch,
          'schedule.lr_end_factor': 0.25,
          'schedule.b2_end': 0.99,
          'schedule.gamma_end_factor': 0.1,
          'schedule.ema_half_life_nimg': 4 * batch,
      }
  )
  old, new, metrics = _one_step(config, step=50)  # The ramps' middle.
  assert float(state_lib.learning_rate(new.g)) == pytest.approx(
      config.optim.g_lr * 0.625
  )
  assert float(new.d.opt_state.hyperparams['b2']) == pytest.approx(0.945)
  assert metrics['g_b2'] == pytest.approx(0.945)
  assert metrics['r1_weight'] == pytest.approx(0.55)
  assert metrics['r2_weight'] == pytest.approx(0.55)
  # Half-life 2 batches at the middle: decay 0.5 ** (1 / 2).
  beta = 0.5**0.5
  assert metrics['ema_decay'] == pytest.approx(beta)
  assert metrics['ema_half_life_kimg'] == pytest.approx(2 * batch / 1000)
  jax.tree.map(
      lambda e, e0, p: np.testing.assert_allclose(
          e, beta * e0 + (1 - beta) * p, rtol=1e-5, atol=1e-7
      ),
      new.ema_params,
      old.ema_params,
      new.g.params,
  )
  # A rollback halves the scheduled rate, and the schedule keeps it halved.
  halved = state_lib.scale_learning_rate(new.g, 0.5)
  assert float(state_lib.learning_rate(halved)) == pytest.approx(
      config.optim.g_lr * 0.625 / 2
  )


@pytest.mark.parametrize(
    'overrides,message',
    [
        ({'schedule.lr_end_factor': 0.5}, 'decay_nimg=0'),
        (
            {'schedule.decay_nimg': 10, 'schedule.aug_p_ramp': True},
            'needs a data.diffaugment',
        ),
        (
            {'schedule.ema_half_life_nimg': 10, 'train.ema_decay': 0.9},
            'both set the EMA',
        ),
        (
            {
                'schedule.decay_nimg': 10,
                'schedule.b2_end': 0.99,
                'optim.d_name': 'rmsprop',
            },
            'needs Adam',
        ),
    ],
)
def test_bad_schedules_are_config_errors(overrides, message):
  config = _step_config(**overrides)
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config)


# --- Real runs ------------------------------------------------------------------


def _run_config(num_train_steps):
  """r3gan64 at 16 px and width 16-32, its ramps over 4 steps."""
  config = r3gan64.get_config()
  tiny = test_config.get_config()
  for field in (
      'batch_size',
      'log_every_steps',
      'sample_every_steps',
      'checkpoint_every_steps',
      'keep_checkpoints',
  ):
    config[field] = tiny[field]
  config.num_train_steps = num_train_steps
  config.data.source = 'synthetic'
  config.data.num_synthetic = 32
  config.data.image_size = 16
  config.data.min_size = 8
  config.model.r3gan_widths = (32, 32, 16)
  config.eval.every_steps = -1
  config.schedule.decay_nimg = 4 * config.batch_size
  return config


@pytest.fixture(scope='module')
def two_steps(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('r3gan_two'))
  train.train_and_evaluate(_run_config(2), workdir)
  return workdir


def test_two_step_r3gan64_run(two_steps):
  records = metrics_log.MetricsLog(two_steps).read()
  assert [r['step'] for r in records] == [1, 2]
  for r in records:
    for key in ('d_loss', 'g_loss', 'r1', 'r2'):
      assert np.isfinite(r[key]), (key, r)
  first, second = records
  # Step 0 is at the ramps' start, step 1 a quarter of the way.
  assert first['g_lr'] == pytest.approx(2e-4)
  assert first['aug_p'] == 0.0 and first['ema_decay'] == 0.0
  quarter = (1 - math.cos(math.pi / 4)) / 2
  assert second['g_b2'] == pytest.approx(0.9 + 0.09 * quarter, rel=1e-6)
  assert second['r1_weight'] == pytest.approx(2.0 - 1.8 * quarter, rel=1e-6)
  assert second['aug_p'] == pytest.approx(0.3 * quarter, rel=1e-5)


def test_r3gan_checkpoint_resumes_exactly(two_steps, tmp_path):
  full = train.train_and_evaluate(_run_config(4), str(tmp_path))
  resumed = train.train_and_evaluate(_run_config(4), two_steps)
  want, got = run_steps.flat_params(full), run_steps.flat_params(resumed)
  assert want.keys() == got.keys()
  for name, value in want.items():
    np.testing.assert_array_equal(got[name], value, err_msg=name)
  for a, b in zip(
      jax.tree.leaves(jax.device_get(full.ema_params)),
      jax.tree.leaves(jax.device_get(resumed.ema_params)),
  ):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(
      jax.tree.leaves(jax.device_get(full.g.opt_state)),
      jax.tree.leaves(jax.device_get(resumed.g.opt_state)),
  ):
    np.testing.assert_array_equal(a, b)
  assert (
      metrics_log.MetricsLog(str(tmp_path)).read()
      == metrics_log.MetricsLog(two_steps).read()
  )
