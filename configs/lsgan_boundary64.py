"""Boundary-seeking LSGAN on 64x64 cats: LSGAN with G's target c=0.5.

    python main.py --config=configs/lsgan_boundary64.py --workdir=runs/lsgan_boundary64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

This project's variant of `lsgan64.py` (Deep-learning-with-cats
`Generating cats/LSGAN.py` with its argparse defaults: ngf = ndf = 128,
z = 100, batch 64, Adam 1e-4, beta1 0.5, no random flips, 146,000
iterations): the generator pushes D(fake) to the decision boundary (c=0.5)
instead of to the real target (c=1). LSGAN.py cannot run it: its `--c` is
declared `type=bool`, so `--c 0.5` gives c = bool('0.5') = True, i.e. 1,
the default (any value but an empty string does).

Hardware: 1 GPU. Expected: similar quality to lsgan64, more stable.
"""

from configs import lsgan64


def get_config():
  """Returns the lsgan_boundary64 config."""
  config = lsgan64.get_config()
  config.loss.c = 0.5
  return config
