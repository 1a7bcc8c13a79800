"""The cat-experiments DCGAN at 64x64: width 128 and a slow discriminator.

    python main.py --config=configs/dcgan_cats64.py --workdir=runs/dcgan_cats64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`) and check it with `python -m catgan_jax.data.scan DIR`.

Follows Deep-learning-with-cats `Generating cats/DCGAN.py` with its argparse
defaults: DCGAN-64 with BatchNorm, ngf = ndf = 128 (G_h_size, D_h_size),
z = 100, batch 64, N(0, 0.02) init, non-saturating BCE, Adam betas
(0.5, 0.999) at D 5e-5 / G 2e-4 (lr_D, lr_G); G's update reuses D's fake
batch (`train.g_samples='reuse'`, as the code does). Differences: the
reference trains for epochs (n_epoch=1000); num_train_steps counts
iterations.

Hardware: 1 GPU. Expected: the reference's 64 px cats; with the slow D the
generator can win early and collapse on a small face set (watch
`sample_std` in TensorBoard: real faces score about 0.25, a collapse under
0.02), which is why `dcgan64.py` uses the standard 2e-4 for both.
"""

from configs import dcgan64


def get_config():
  """Returns the dcgan_cats64 config."""
  config = dcgan64.get_config()  # z 100, BN, Adam (0.5, 0.999), nsgan.
  config.model.g_width = 128
  config.model.d_width = 128
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 5e-5
  return config
