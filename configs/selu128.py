"""The SELU DCGAN at 128x128: the recipe that converged when BN+ReLU did not.

    python main.py --config=configs/selu128.py --workdir=runs/selu128 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

Follows Deep-learning-with-cats `Generating cats/DCGAN.py` run as its
README does for 128x128 cats (`--image_size 128 --G_h_size 64 --D_h_size 64
--SELU True`, the rest argparse defaults): DCGAN-128 with SELU activations
and no normalisation in either network, every layer bias-free and
initialised N(0, 0.02) (the code's weights_init, not the LeCun-normal init
SELU networks usually get), ngf = ndf = 64, z = 100, batch 64, Adam with
betas (0.5, 0.999) at D 5e-5 / G 2e-4, non-saturating BCE loss; G's update
reuses D's fake batch (`train.g_samples='reuse'`, as the code does); no
random flips (the code has none). Length: the README's pictured result,
`DCGAN_SELU_128x128_epoch605.png` (605 epochs; the code's n_epoch=1000 runs
on), as iterations over the 6,445 faces of at least 128 px it trained on:
101 batches of 64 per epoch (the last one short), 61,105 iterations.

Differences from DCGAN.py: the argparse default width is 128 (for its 64px
runs); the README's 128px command sets 64, which is used here.

Hardware: 1 GPU (several hours). Expected: 128px cat faces that keep
improving where the BatchNorm version collapsed.
"""

import math

from configs import default


def get_config():
  """Returns the selu128 config."""
  config = default.get_config()
  config.data.source = 'folder'
  # The pictured 605 epochs of 6,445 faces in batches of 64.
  config.num_train_steps = 605 * math.ceil(6_445 / 64)
  config.batch_size = 64
  config.data.image_size = 128
  # The seed recipes trained only on faces of at least 128 px; smaller ones
  # are skipped, not upscaled.
  config.data.min_size = 128
  config.model.z_dim = 100
  config.model.g_width = 64
  config.model.d_width = 64
  config.model.norm = 'selu'
  config.model.kernel_init = 'dcgan_normal'
  config.model.use_bias = False
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 5e-5
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  return config
