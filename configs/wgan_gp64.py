"""WGAN-GP (Gulrajani et al. 2017) on 64x64 cats.

    python main.py --config=configs/wgan_gp64.py --workdir=runs/wgan_gp64 \\
        --config.data.dir=../shared/data/cat_faces_64

Reproduces the paper's recipe: WGAN critic loss plus a gradient penalty of
weight 10 on random interpolates of real and fake images, Adam lr 1e-4 with
betas (0, 0.9), five critic updates per generator update, and no BatchNorm
in the critic (the penalty is per sample; LayerNorm instead).

Hardware: 1 GPU. Expected: stable training, cat faces after ~20k generator
updates; the penalty term stays near 0.1-1.
"""

from configs import default


def get_config():
  """Returns the wgan_gp64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.num_train_steps = 100_000
  config.loss.name = 'wgan_gp'
  config.loss.gp_weight = 10.0
  config.model.d_norm = 'layer'
  config.optim.g_lr = 1e-4
  config.optim.d_lr = 1e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  config.train.d_steps_per_g_step = 5
  # The reference's G update draws its own z (and G forward pass).
  config.train.g_samples = 'fresh_z'
  return config
