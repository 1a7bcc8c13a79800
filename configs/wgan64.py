"""WGAN with weight clipping (Arjovsky et al. 2017) on 64x64 cats.

    python main.py --config=configs/wgan64.py --workdir=runs/wgan64 \\
        --config.data.dir=../shared/data/cat_faces_64

Reproduces the paper's recipe: critic loss E[D(fake)] - E[D(real)], every
critic parameter clipped to +-0.01 after each update, RMSProp lr 5e-5, five
critic updates per generator update (train.d_steps_per_g_step counts
iterations: the generator takes num_train_steps / 5 updates).

Hardware: 1 GPU. Expected: slow but stable progress; blurry cat faces after
~20k generator updates; d_loss (the negative critic estimate of the
Wasserstein distance) falls steadily in magnitude.
"""

from configs import default


def get_config():
  """Returns the wgan64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.num_train_steps = 100_000
  config.loss.name = 'wgan'
  config.loss.clip = 0.01
  config.optim.g_name = 'rmsprop'
  config.optim.d_name = 'rmsprop'
  config.optim.g_lr = 5e-5
  config.optim.d_lr = 5e-5
  config.train.d_steps_per_g_step = 5
  # The reference's G update draws its own z (and G forward pass).
  config.train.g_samples = 'fresh_z'
  return config
