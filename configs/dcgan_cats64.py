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
batch (`train.g_samples='reuse'`, as the code does); no random flips (the
code has none). Length: the README's pictured result, `DCGAN_209epoch.png`
(209 epochs; the code's n_epoch=1000 runs on), as iterations over the
reference's 9,304 faces of at least 64 px: 146 batches of 64 per epoch (the
last one short), 30,514 iterations.

Hardware: 1 GPU. Expected: the reference's 64 px cats; with the slow D the
generator can win early and collapse on a small face set (watch
`sample_std` in TensorBoard: real faces score about 0.25, a collapse under
0.02), which is why `dcgan64.py` uses the standard 2e-4 for both.
"""

import math

from configs import dcgan64


def get_config():
  """Returns the dcgan_cats64 config."""
  config = dcgan64.get_config()  # z 100, BN, Adam (0.5, 0.999), nsgan.
  config.model.g_width = 128
  config.model.d_width = 128
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 5e-5
  # The pictured 209 epochs of 9,304 faces in batches of 64.
  config.num_train_steps = 209 * math.ceil(9_304 / 64)
  return config
