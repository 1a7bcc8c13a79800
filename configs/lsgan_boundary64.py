"""Boundary-seeking LSGAN on 64x64 cats: LSGAN with G's target c=0.5.

    python main.py --config=configs/lsgan_boundary64.py --workdir=runs/lsgan_boundary64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

Same as lsgan64 (Deep-learning-with-cats `Generating cats/LSGAN.py`
argparse defaults: ngf = ndf = 128, z = 100, batch 64, Adam 1e-4, beta1
0.5) but the generator pushes D(fake) to the decision boundary (c=0.5)
instead of to the real target: LSGAN.py's `--c 0.5` (differs from its
default c=1 only there).

Hardware: 1 GPU. Expected: similar quality to lsgan64, more stable.
"""

from configs import default


def get_config():
  """Returns the lsgan_boundary64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.num_train_steps = 50_000
  config.batch_size = 64
  config.model.z_dim = 100
  config.model.g_width = 128
  config.model.d_width = 128
  config.loss.name = 'lsgan'
  config.loss.c = 0.5
  config.optim.g_lr = 1e-4
  config.optim.d_lr = 1e-4
  config.optim.b1 = 0.5
  return config
