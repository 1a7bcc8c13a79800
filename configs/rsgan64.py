"""RSGAN (Jolicoeur-Martineau 2018, 'The relativistic discriminator') on 64x64 cats.

    python main.py --config=configs/rsgan64.py --workdir=runs/rsgan64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

Follows RelativisticGAN `code/GAN_losses_iter.py --loss_D 5` as
`code/unstable.sh` runs it on the 64x64 cats (see
`default.relativistic_config`): DCGAN-64 with BatchNorm, ngf = ndf = 64,
z = 128, Adam lr 2e-4, betas (0.5, 0.999), batch 32, one D update per G
update, 100k iterations, and a new z and new real batch for each G update
(`train.g_samples='fresh_z_and_reals'`: 64 images read per iteration); the
paper reports FID on 64x64 cats after 100k iterations. Differs only in
drawing real batches from per-epoch permutations (the reference draws each
batch at random).

Hardware: 1 GPU (~2-3 h). Expected: relativistic losses reach a lower FID
than the standard GAN (nsgan) with this architecture; on CPU use it only to
check that it runs.
"""

from configs import default


def get_config():
  """Returns the rsgan64 config."""
  return default.relativistic_config('rsgan')
