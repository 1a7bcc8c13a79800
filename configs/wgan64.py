"""WGAN with weight clipping (Arjovsky et al. 2017) on 64x64 cats.

    python main.py --config=configs/wgan64.py --workdir=runs/wgan64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

Follows Deep-learning-with-cats `Generating cats/WGAN.py` (argparse
defaults, after Arjovsky's WassersteinGAN code): DCGAN-64 with BatchNorm in
both networks, ngf = ndf = 64, z = 100, batch 64; critic loss
E[D(fake)] - E[D(real)]; RMSProp (torch's: alpha 0.99, eps 1e-8 after the
square root) at lr 5e-5 for both networks; every critic parameter clamped
to +-0.01 at the start of each critic update (`loss.clip_mode=
'before_update'`, as that code does, so G meets the last update unclipped);
5 critic updates per generator update, and 100 before each of the first 25
and every 500th generator update (the "trick" of the WGAN paper's code);
the generator update draws its own z (`train.g_samples='fresh_z'`); no
random flips (the code has none).

Length: the README's pictured result, `WGAN_1408epoch.png` (the code's
n_epoch=500000 sets no usable end). The README calls it epoch 1408, but
the script of the picture's day (`Meow_WGAN.py` at commit be8b531, the last
change before the picture was added) names its grids
`fake_samples_iter%05d` by generator updates / 50 and saves none per
epoch: 1408 is 70,400 generator updates, which with the warm-up groups are
367,675 iterations here (`train.d_steps_per_g_step` counts iterations: 165
groups of 100 critic updates and 70,235 of 5).

Differences from WGAN.py: the reference cuts a critic group short at the
end of each epoch, here groups ignore epochs; real batches come from
per-epoch permutations either way.

Hardware: 1 GPU. Expected: slow but stable progress; blurry cat faces after
~20k generator updates; d_loss (the negative critic estimate of the
Wasserstein distance) falls steadily in magnitude.
"""

from configs import default


def get_config():
  """Returns the wgan64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  # 70,400 generator updates (the pictured grid 1408 x 50), as iterations:
  # 165 warm-up groups (the first 25 and every 500th) of 100, the rest of 5.
  config.num_train_steps = 165 * 100 + (70_400 - 165) * 5
  config.batch_size = 64
  config.model.z_dim = 100
  config.model.g_width = 64
  config.model.d_width = 64
  config.loss.name = 'wgan'
  config.loss.clip = 0.01
  config.loss.clip_mode = 'before_update'
  config.optim.g_name = 'rmsprop'
  config.optim.d_name = 'rmsprop'
  config.optim.g_lr = 5e-5
  config.optim.d_lr = 5e-5
  config.train.d_steps_per_g_step = 5
  config.train.warmup_d_steps_per_g_step = 100
  config.train.warmup_g_steps = 25
  config.train.warmup_every_g_steps = 500
  # The reference's G update draws its own z (and G forward pass).
  config.train.g_samples = 'fresh_z'
  return config
