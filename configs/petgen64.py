"""The pet-generator DCGAN on 64x64 cats: fighting an over-fitting D.

    python main.py --config=configs/petgen64.py --workdir=runs/petgen64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

DCGAN-64, batch 32, random crops + flips, the discriminator updated only on
every 2nd step, and one-sided label smoothing (real label 0.9), as the
dogs-vs-cats script did against a discriminator that won too fast.

Reference: that dogs-vs-cats pet-generator DCGAN script (not in a public
repository); the network is the PyTorch DCGAN of `dcgan64.py`. The length,
30k steps, is a choice made here, not known from the script.

Hardware: 1 GPU. Expected: D accuracy stays well below 1; cat faces after
~10k steps.
"""

from configs import default


def get_config():
  """Returns the petgen64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.batch_size = 32
  config.num_train_steps = 30_000
  config.data.crop = 'random'
  config.data.rrc_min_scale = 0.8
  config.data.flip = True
  config.train.d_every_k_steps = 2
  config.loss.real_label = 0.9
  return config
