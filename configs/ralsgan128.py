"""RaLSGAN at 128x128 (Jolicoeur-Martineau 2018), the paper's 128px cats.

    python main.py --config=configs/ralsgan128.py --workdir=runs/ralsgan128 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

Needs >=128px cat faces (e.g. the >=128 bucket of
`python -m catgan_jax.data.prepare_cat`). Follows RelativisticGAN
`code/GAN_losses_iter.py --loss_D 7` as `code/unstable.sh` runs it on the
128px cats (`--image_size 128 ... --G_h_size 64 --D_h_size 64`, see
`default.relativistic_config`): DCGAN-128 with BatchNorm, ngf = ndf = 64,
z = 128, Adam 2e-4, betas (0.5, 0.999), batch 32, 100k iterations, a new z
and real batch for each G update (`train.g_samples='fresh_z_and_reals'`);
the paper's only loss that produced good 128px cats with this
architecture. Differs only in drawing real batches from per-epoch
permutations.

Hardware: 1 GPU (several hours). Expected: recognisable 128px cats.
"""

from configs import default


def get_config():
  """Returns the ralsgan128 config."""
  return default.relativistic_config('ralsgan', image_size=128)
