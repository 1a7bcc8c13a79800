"""LSGAN (Mao et al. 2017) on 64x64 cats.

    python main.py --config=configs/lsgan64.py --workdir=runs/lsgan64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

Follows Deep-learning-with-cats `Generating cats/LSGAN.py` (argparse
defaults): least-squares losses 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]
and 1/2 E[(D(G(z)) - c)^2] with a=0 (fake), b=1 (real), c=1 (G's target);
DCGAN-64 with BatchNorm, ngf = ndf = 128, z = 100, batch 64; Adam lr 1e-4
for both networks, betas (0.5, 0.999); G's update reuses D's fake batch
(`train.g_samples='reuse'`, as the code does); no random flips (the code
has none). Length: the code's n_epoch=1000 (the README pictures no LSGAN
run), as iterations over the reference's 9,304 faces of at least 64 px:
146 batches of 64 per epoch (the last one short), 146,000 iterations. No
differences in the recipe.

Hardware: 1 GPU. Expected (from the cat experiments): faces, but LSGAN on
cats is known to collapse suddenly (cats to noise between two epochs): the divergence guard (train.max_loss)
and EMA samples help; watch the FID curve.
"""

import math

from configs import default


def get_config():
  """Returns the lsgan64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  # The code's 1000 epochs of 9,304 faces in batches of 64.
  config.num_train_steps = 1000 * math.ceil(9_304 / 64)
  config.batch_size = 64
  config.model.z_dim = 100
  config.model.g_width = 128
  config.model.d_width = 128
  config.loss.name = 'lsgan'
  config.loss.a, config.loss.b, config.loss.c = 0.0, 1.0, 1.0
  config.optim.g_lr = 1e-4
  config.optim.d_lr = 1e-4
  config.optim.b1 = 0.5
  return config
