"""Every GAN loss of the registry on 32 px cat faces, 3 seeds each.

    python -m catgan_jax.study --config=configs/study/losses32.py \\
        --workdir=runs/losses32 \\
        --config.base.data.dir=/path/to/cat_faces_64 \\
        --config.scorers.mobilenet_v2.features_path=/path/to/mobilenet_v2_1.0_224_quant.tflite

`/path/to/cat_faces_64` is any folder of cat faces (made with
`python -m catgan_jax.data.prepare_cat CAT_DIR OUT`, then `OUT/64`); the
input pipeline downscales them to 32 px. The feature network is the
offline MobileNetV2 (`mobilenet_v2_1.0_224_quant.tflite`); add another
scorer with `--config.scorers.NAME=...` entries in a copy of this file.

The design follows Lucic et al., "Are GANs Created Equal?" (NeurIPS 2018)
and Kurach et al.'s compare_gan: one architecture, each loss with the
settings of its reference, several seeds, and the FID spread over seeds
reported beside every mean. The networks are DCGAN-32 (pytorch/examples'
DCGAN with one stage fewer: BatchNorm, ngf = ndf = 32, z = 100), batch 64,
no EMA. The arms:
  nsgan, minimax, lsgan, hinge, rsgan, rasgan, ralsgan, rahinge: plain,
      Adam 2e-4 with betas (0.5, 0.999), one D update per G update (the
      DCGAN recipe and RelativisticGAN's `GAN_losses_iter.py` defaults);
  wgan: weight clipping at 0.01 before each critic update, RMSProp 5e-5,
      5 critic updates per G update, a fresh z for G (configs/wgan64.py,
      after Arjovsky's code), without the 100-critic-update warm-up, which
      would take a short budget's first 2,500 iterations;
  wgan_gp: gradient penalty 10, a critic without normalisation, Adam 1e-4
      with betas (0, 0.9), 5 critic updates per G update, a fresh z for G
      (configs/wgan_gp64.py, after Gulrajani et al.'s code).
The budget is counted in iterations (one D update each), the same for
every arm: the two WGANs make a fifth as many G updates.

Hardware: 2 CPU cores. Time: about 2 hours on a quiet machine, extrapolated
from a reduced run (3 arms x 2 seeds x 300 steps in 16 minutes on cores
shared with other jobs): 30 runs of 1,000 steps (1-3 minutes each, the
WGAN-GP arm about three times the others), each scored at 2 checkpoints
with 2,000 samples (most of the time: about 40 generated images per second
are scored), and the reference features of the 9,303 faces once.
`--parallel=2` does not help on 2 cores. Expected: not measured in full
yet; the reduced run, its command and what it shows: docs/loss_study.md.
"""

import ml_collections

from configs import default

# Each loss with the settings of its reference (see the docstring).
_PLAIN = ('nsgan', 'minimax', 'lsgan', 'hinge')
_RELATIVISTIC = ('rsgan', 'rasgan', 'ralsgan', 'rahinge')
_WGAN = {
    'loss': {'name': 'wgan', 'clip': 0.01, 'clip_mode': 'before_update'},
    'optim': {
        'g_name': 'rmsprop',
        'd_name': 'rmsprop',
        'g_lr': 5e-5,
        'd_lr': 5e-5,
    },
    'train': {'d_steps_per_g_step': 5, 'g_samples': 'fresh_z'},
}
_WGAN_GP = {
    'loss': {'name': 'wgan_gp', 'gp_weight': 10.0},
    'model': {'d_norm': 'none'},
    'optim': {'g_lr': 1e-4, 'd_lr': 1e-4, 'b1': 0.0, 'b2': 0.9},
    'train': {'d_steps_per_g_step': 5, 'g_samples': 'fresh_z'},
}


def base_config() -> ml_collections.ConfigDict:
  """DCGAN-32 on a folder of cat faces, the recipe every arm starts from."""
  config = default.get_config()
  config.data.source = 'folder'
  config.data.image_size = 32
  config.batch_size = 64
  config.model.name = 'dcgan'
  config.model.z_dim = 100
  config.model.g_width = 32
  config.model.d_width = 32
  config.loss.name = 'nsgan'
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.log_every_steps = 100
  config.sample_every_steps = 500
  return config


def get_config(arms: str = '') -> ml_collections.ConfigDict:
  """Returns the losses32 study config.

  Args:
    arms: comma-separated arm names to keep ('' = every loss), e.g.
      `--config=configs/study/losses32.py:nsgan,hinge,wgan`.
  """
  study = ml_collections.ConfigDict()
  study.base = base_config()
  every = {name: {'loss': {'name': name}} for name in _PLAIN + _RELATIVISTIC}
  every['wgan'] = _WGAN
  every['wgan_gp'] = _WGAN_GP
  names = [a for a in arms.split(',') if a] or list(every)
  unknown = sorted(set(names) - set(every))
  if unknown:
    raise ValueError(
        f'configs/study/losses32.py:{arms}: unknown arm(s) '
        f'{", ".join(unknown)}; valid: {", ".join(every)}'
    )
  study.arms = {name: every[name] for name in names}
  study.seeds = (0, 1, 2)
  study.num_train_steps = 1_000
  # Or a budget in minutes of training per run (then num_train_steps=0):
  # `--config.num_train_steps=0 --config.budget_minutes=5`.
  study.budget_minutes = 0.0
  study.score_points = 2
  study.num_samples = 2_000
  study.scorers = {
      'mobilenet_v2': {'features': 'mobilenet_v2', 'features_path': ''}
  }
  return study
