"""WGAN-GP (Gulrajani et al. 2017) on 64x64 cats.

    python main.py --config=configs/wgan_gp64.py --workdir=runs/wgan_gp64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

Follows Deep-learning-with-cats `Generating cats/WGAN-GP.py` (argparse
defaults): DCGAN-64 with ngf = ndf = 128, z = 100, batch 64; the critic has
no normalisation at all ("Removed Batch Norm we can't backward on the
gradients with BatchNorm2d") and, like every layer there, no biases; G keeps
BatchNorm; WGAN critic loss plus a gradient penalty of weight 10 on
per-sample random interpolates of real and fake images; Adam lr 1e-4 for
both networks with betas (0, 0.9); five critic updates per generator
update; the generator update draws its own z (`train.g_samples='fresh_z'`);
no random flips (the code has none). Length: the code's n_iter=100000
generator updates, 500,000 iterations here (num_train_steps counts critic
iterations, five per generator update).

Differences from WGAN-GP.py: the reference draws each real batch
independently at random, here batches come from per-epoch permutations.
The README's pictured run (`WGAN_GP_iter15195.png`, 15,195 generator
updates) used --SELU True; this config keeps the argparse default
(BatchNorm + ReLU G, LeakyReLU critic), and with it the code's length.

Hardware: 1 GPU. Expected: stable training, cat faces after ~20k generator
updates; the penalty term stays near 0.1-1.
"""

from configs import default


def get_config():
  """Returns the wgan_gp64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  # The code's n_iter=100000 generator updates, 5 critic iterations each.
  config.num_train_steps = 100_000 * 5
  config.batch_size = 64
  config.model.z_dim = 100
  config.model.g_width = 128
  config.model.d_width = 128
  config.model.d_norm = 'none'
  config.model.use_bias = False
  config.loss.name = 'wgan_gp'
  config.loss.gp_weight = 10.0
  config.optim.g_lr = 1e-4
  config.optim.d_lr = 1e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  config.train.d_steps_per_g_step = 5
  # The reference's G update draws its own z (and G forward pass).
  config.train.g_samples = 'fresh_z'
  return config
