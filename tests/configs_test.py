"""Every experiment config builds and trains for 2 steps at a tiny size."""

import os

import numpy as np
import pytest

import helpers
from catgan_jax import config_lib
from catgan_jax import step as step_lib
from catgan_jax import train
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = helpers.experiment_configs()


# Every config also trains 2 steps through main.py in tests/clone_test.py.


def _tiny(config):
  """Shrinks a config to CPU-test size, keeping its loss and schedule."""
  config.batch_size = 8
  config.num_train_steps = 2
  config.log_every_steps = 1
  config.sample_every_steps = 100
  config.checkpoint_every_steps = 100
  config.data.source = 'synthetic'
  config.data.num_synthetic = 32
  config.data.image_size = 16
  config.model.z_dim = 8
  config.model.g_width = 4
  config.model.d_width = 4
  # A projected discriminator's feature network, small and untrained.
  config.model.feature_random_init = True
  config.model.interp_size = 64
  config.eval.every_steps = -1
  return config


def test_every_experiment_has_a_config():
  expected = {
      'dcgan64',
      'selu128',
      'wgan64',
      'wgan_gp64',
      'lsgan64',
      'lsgan_boundary64',
      'hinge64',
      'relativistic:rsgan',
      'relativistic:rasgan',
      'relativistic:ralsgan',
      'relativistic:rahinge',
      'relativistic:ralsgan,128',
      'keras_cats64',
      'petgen64',
      'dcgan128_tf',
      'default',
      'test',
      'quickstart',
      'dogs64',
      'projected64',
      'projected128',
      'fastgan64',
      'cpu64',
      'dcgan_cpu64',
  }
  assert expected <= set(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_shipped_config_validates(name, tmp_path):
  config = helpers.load_config(name)
  config.data.dir = str(tmp_path)  # Given on the command line.
  if helpers.HAS_MOBILENET:  # So is a projected D's feature network.
    config.model.feature_path = helpers.MOBILENET
  else:
    config.model.feature_random_init = True
  config_lib.validate(config)


@pytest.mark.parametrize(
    'overrides, message',
    [
        ({'loss.name': 'wgan_gp', 'loss.gp_weight': 0.0}, 'loss.gp_weight=0.0'),
        ({'loss.name': 'wgan', 'loss.clip': 0.0}, 'loss.clip=0.0'),
    ],
)
def test_unconstrained_wgan_is_a_config_error(overrides, message):
  config = test_config.get_config()
  for field, value in overrides.items():
    group, leaf = field.split('.')
    config[group][leaf] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config)


def test_constrained_wgans_validate():
  config = test_config.get_config()
  config.loss.name = 'wgan'
  for field in ('clip', 'gp_weight', 'r1_weight'):
    config.loss.clip = config.loss.gp_weight = config.loss.r1_weight = 0.0
    config.loss[field] = 0.01
    config_lib.validate(config)


# The argparse defaults (and, where the reference's README or run scripts
# override them for cats, those values) of each recipe's reference code.
# RelativisticGAN code/GAN_losses_iter.py's settings in code/unstable.sh's
# cat runs ("Meow tests").
_GAN_LOSSES_ITER = {
    'batch_size': 32,
    'model.z_dim': 128,
    'model.g_width': 64,
    'model.d_width': 64,
    'optim.g_lr': 2e-4,
    'optim.d_lr': 2e-4,
    'optim.b1': 0.5,
    'optim.b2': 0.999,
    'train.d_steps_per_g_step': 1,
    'num_train_steps': 100_000,
}
RECIPES = {
    # Deep-learning-with-cats Generating cats/WGAN.py.
    'wgan64': {
        'batch_size': 64,
        'model.z_dim': 100,
        'model.g_width': 64,
        'model.d_width': 64,
        'optim.g_name': 'rmsprop',
        'optim.d_name': 'rmsprop',
        'optim.g_lr': 5e-5,
        'optim.d_lr': 5e-5,
        'train.d_steps_per_g_step': 5,
        'loss.clip': 0.01,
        'loss.clip_mode': 'before_update',
        'train.warmup_d_steps_per_g_step': 100,
        'train.warmup_g_steps': 25,
        'train.warmup_every_g_steps': 500,
        'train.g_samples': 'fresh_z',
        'model.norm': 'batch',
    },
    # Generating cats/WGAN-GP.py.
    'wgan_gp64': {
        'batch_size': 64,
        'model.z_dim': 100,
        'model.g_width': 128,
        'model.d_width': 128,
        'optim.g_lr': 1e-4,
        'optim.d_lr': 1e-4,
        'optim.b1': 0.0,
        'optim.b2': 0.9,
        'train.d_steps_per_g_step': 5,
        'loss.gp_weight': 10.0,
        'model.d_norm': 'none',
        'model.use_bias': False,
        'train.g_samples': 'fresh_z',
    },
    # Generating cats/DCGAN.py with the README's 128px SELU command.
    'selu128': {
        'batch_size': 64,
        'model.z_dim': 100,
        'model.g_width': 64,
        'model.d_width': 64,
        'data.image_size': 128,
        'optim.g_lr': 2e-4,
        'optim.d_lr': 5e-5,
        'optim.b1': 0.5,
        'model.norm': 'selu',
        'model.kernel_init': 'dcgan_normal',
        'model.use_bias': False,
        'train.g_samples': 'reuse',
    },
    # Generating cats/LSGAN.py.
    'lsgan64': {
        'batch_size': 64,
        'model.z_dim': 100,
        'model.g_width': 128,
        'model.d_width': 128,
        'optim.g_lr': 1e-4,
        'optim.d_lr': 1e-4,
        'optim.b1': 0.5,
        'loss.a': 0.0,
        'loss.b': 1.0,
        'loss.c': 1.0,
    },
    'lsgan_boundary64': {
        'model.g_width': 128,
        'optim.g_lr': 1e-4,
        'loss.c': 0.5,
    },
    # The dog experiment (its code is not available): the PyTorch DCGAN
    # example (pytorch/examples dcgan/main.py) on TFDS stanford_dogs.
    'dogs64': {
        'batch_size': 64,
        'model.z_dim': 100,
        'model.g_width': 64,
        'model.d_width': 64,
        'model.norm': 'batch',
        'loss.name': 'nsgan',
        'optim.g_lr': 2e-4,
        'optim.d_lr': 2e-4,
        'optim.b1': 0.5,
        'optim.b2': 0.999,
        'train.g_samples': 'reuse',
        'data.source': 'tfds',
        'data.tfds_name': 'stanford_dogs',
        'model.base_size': 4,
        'model.g_leak': 0.0,
        'eval.is_splits': 10,
    },
    # GAN_losses_iter.py --loss_D 4 --spectral True, unstable.sh settings.
    'hinge64': {
        **_GAN_LOSSES_ITER,
        'loss.name': 'hinge',
        'model.spectral_norm': True,
        'train.g_samples': 'fresh_z',
    },
    # Projected GAN train.py --cfg=fastgan_lite (CPU widths aside).
    'projected64': {
        'model.name': 'fastgan_lite',
        'model.z_dim': 64,
        'model.proj_type': 2,
        'model.proj_cout': 64,
        'model.proj_expand': True,
        'model.num_discs': 4,
        'loss.name': 'hinge',
        'data.diffaugment': 'color,translation,cutout',
        'data.diffaugment_p': 1.0,
        # Its README's training command passes --mirror=1.
        'data.flip': True,
        'batch_size': 64,
        'optim.g_lr': 2e-4,
        'optim.d_lr': 2e-4,
        'optim.b1': 0.0,
        'optim.b2': 0.99,
        'schedule.ema_half_life_nimg': 20_000,
        'train.g_samples': 'fresh_z',
    },
    # FastGAN-pytorch train.py (CPU widths aside).
    'fastgan64': {
        'model.name': 'fastgan',
        'model.discriminator': 'fastgan',
        'model.z_dim': 256,
        'loss.name': 'hinge_random_margin',
        'data.diffaugment': 'color,translation',
        'data.flip': True,
        'batch_size': 8,
        'optim.g_lr': 2e-4,
        'optim.d_lr': 2e-4,
        'optim.b1': 0.5,
        'optim.b2': 0.999,
        'train.ema_decay': 0.999,
        'train.g_samples': 'reuse',
        'num_train_steps': 50_000,
    },
    # RelativisticGAN code/GAN_losses_iter.py as code/unstable.sh runs it.
    **{
        name: {**_GAN_LOSSES_ITER, 'train.g_samples': 'fresh_z_and_reals'}
        for name in (
            'relativistic:rsgan',
            'relativistic:rasgan',
            'relativistic:ralsgan',
            'relativistic:rahinge',
            'relativistic:ralsgan,128',
        )
    },
}


# cpu64 is projected64 for the steps of its 40-minute budget.
RECIPES['cpu64'] = RECIPES['projected64']


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_recipe_follows_its_reference_code(name):
  config = helpers.load_config(name)
  for field, expected in RECIPES[name].items():
    value = config
    for part in field.split('.'):
      value = value[part]
    assert value == expected, f'{name}: {field}={value!r}, not {expected!r}'


@pytest.mark.parametrize(
    'overrides, message',
    [
        ({'data.ada_target': 0.6}, "data.diffaugment=''"),
        (
            {
                'data.ada_target': 0.6,
                'data.diffaugment': 'translation',
                'data.ada_interval': 0,
            },
            'data.ada_interval=0',
        ),
    ],
)
def test_ada_without_augmentation_or_interval_is_a_config_error(
    overrides, message
):
  config = test_config.get_config()
  for field, value in overrides.items():
    group, leaf = field.split('.')
    config[group][leaf] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config)


def test_fresh_samples_and_ada_resume_exactly(tmp_path):
  """A run with fresh G samples (2x input batch) and ADA resumes bit-exactly:
  its extra keys are folded in from (seed, step) and its ADA statistics are
  checkpointed."""
  from tests.fixtures import run_steps  # pylint: disable=g-import-not-at-top

  def config(steps):
    c = _tiny(test_config.get_config())
    c.num_train_steps = steps
    c.checkpoint_every_steps = 3
    c.loss.name = 'rsgan'
    c.optim.d_lr = 0.01  # D separates fast: r_t > 0, p grows.
    c.train.g_samples = 'fresh_z_and_reals'
    c.data.diffaugment = 'translation'
    # p moves by +-8 * 2 / 10 = 1.6 every 2 steps: it is 0 or 1 after each
    # adjustment, whichever way this tiny D leans.
    c.data.ada_target = 1e-3
    c.data.ada_interval = 2
    c.data.ada_kimg = 0.01
    return c

  straight = train.train_and_evaluate(config(5), str(tmp_path / 'a'))
  train.train_and_evaluate(config(3), str(tmp_path / 'b'))
  resumed = train.train_and_evaluate(config(5), str(tmp_path / 'b'))
  a, b = run_steps.flat_params(straight), run_steps.flat_params(resumed)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert float(straight.aug_p) == float(resumed.aug_p) == 1.0
  np.testing.assert_array_equal(straight.ada_stats, resumed.ada_stats)


def _wgan_iterations(g_updates: int) -> int:
  """Critic iterations of WGAN.py before `g_updates` generator updates."""
  # Its "trick": 100 critic updates before each of the first 25 and every
  # 500th generator update, 5 before the others.
  return sum(100 if j < 25 or j % 500 == 0 else 5 for j in range(g_updates))


# Each config's random flips and length (iterations) against its reference:
# config -> (data.flip, num_train_steps, where the length comes from). None
# of the public references flips. Epochs are iterations over the reference's
# faces: 9,304 of at least 64 px (146 batches of 64, the last one short),
# 6,445 of at least 128 px (101 batches).
FLIPS_AND_LENGTHS = {
    'dcgan64': (False, 3_650, 'pytorch/examples dcgan/main.py: 25 epochs'),
    'dcgan_cats64': (False, 30_514, 'cats README: DCGAN_209epoch.png'),
    'selu128': (False, 61_105, 'cats README: DCGAN_SELU_128x128_epoch605'),
    'lsgan64': (False, 146_000, 'cats LSGAN.py: n_epoch=1000'),
    'lsgan_boundary64': (False, 146_000, 'as lsgan64 (a variant)'),
    'wgan64': (
        False,
        _wgan_iterations(1408 * 50),
        'cats README: WGAN_1408epoch.png, grid 1408 = 70,400 G updates',
    ),
    'wgan_gp64': (False, 500_000, 'cats WGAN-GP.py: n_iter=100000 G updates'),
    'hinge64': (False, 100_000, 'RelGAN unstable.sh: --n_iter 100000'),
    **{
        name: (False, 100_000, 'RelGAN unstable.sh: --n_iter 100000')
        for name in (
            'relativistic:rsgan',
            'relativistic:rasgan',
            'relativistic:ralsgan',
            'relativistic:rahinge',
            'relativistic:ralsgan,128',
        )
    },
    'dogs64': (False, 8_050, 'DCGAN example: 25 epochs of 20,580 photos'),
    'dogs64:batch32': (False, 16_100, 'the same at batch 32'),
    # This project's own recipes: flips on, lengths of their budgets.
    'cpu64': (True, 850, '40 minutes of projected64 on 2 CPU cores'),
    'dcgan_cpu64': (True, 5_500, '40 minutes of DCGAN on 2 CPU cores'),
    'quickstart': (True, 3_000, 'a few minutes on a laptop CPU'),
    # Non-public scripts: the flips their docstrings list; lengths chosen.
    'keras_cats64': (True, 30_000, 'chosen here'),
    'petgen64': (True, 30_000, 'chosen here'),
    'dcgan128_tf': (False, 30_000, 'chosen here'),
}


@pytest.mark.parametrize('name', sorted(FLIPS_AND_LENGTHS))
def test_flips_and_length_follow_the_reference(name):
  flip, steps, reference = FLIPS_AND_LENGTHS[name]
  config = helpers.load_config(name)
  assert (config.data.flip, config.num_train_steps) == (flip, steps), (
      f'{name}: data.flip={config.data.flip}, '
      f'num_train_steps={config.num_train_steps}; {reference} gives '
      f'{flip}, {steps}'
  )


def test_cpu64_is_projected64_but_for_its_length_and_scoring():
  cpu64 = config_lib.hparams(helpers.load_config('cpu64'))
  projected = config_lib.hparams(helpers.load_config('projected64'))
  differing = sorted(
      k
      for k in cpu64.keys() | projected.keys()
      if cpu64.get(k) != projected.get(k)
  )
  assert differing == [
      'eval.every_steps',
      'eval.num_samples',
      'num_train_steps',
  ], differing


def test_wgan64_ends_on_its_70400th_generator_update():
  config = helpers.load_config('wgan64')
  assert config.num_train_steps == 165 * 100 + (70_400 - 165) * 5
  last = config.num_train_steps - 1
  assert step_lib.update_phase(config, last).update_g
  assert not step_lib.update_phase(config, last - 1).update_g
