"""Hinge-loss GAN (Lim & Ye 2017; Miyato et al. 2018) on 64x64 cats.

    python main.py --config=configs/hinge64.py --workdir=runs/hinge64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

D: E[relu(1 - D(real))] + E[relu(1 + D(fake))]; G: -E[D(fake)]. Follows
RelativisticGAN `code/GAN_losses_iter.py --loss_D 4 --spectral True` with
the settings `code/unstable.sh` gives its 64 px cat runs: DCGAN-64 with
spectral normalisation on every D layer and therefore no BatchNorm in D
(BN would undo SN; the code's `--spectral` removes it the same way), ngf =
ndf = 64, z = 128, batch 32, Adam 2e-4 with betas (0.5, 0.999) for both
networks, one D update per G update, 100k iterations, and a fresh z for
each G update (`train.g_samples='fresh_z'`; the hinge G loss uses no
reals); no random flips (the code has none). Differs from unstable.sh's own
HingeGAN cat run in having SN on (that run has none;
`--config.model.spectral_norm=False` gives it).

Hardware: 1 GPU. Expected: stable, cat faces after ~10k steps. On 2 CPU
cores, 40 minutes of training (3,611 steps) give MobileNetV2 FID 599
(`benchmarks/results/ttq_hinge64_cpu.json`, measured with random flips,
`--config.data.flip=True`; `dcgan_cpu64.py` reaches 206).
"""

from configs import default


def get_config():
  """Returns the hinge64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.batch_size = 32
  config.num_train_steps = 100_000
  config.model.z_dim = 128
  config.loss.name = 'hinge'
  config.model.spectral_norm = True
  config.train.g_samples = 'fresh_z'
  return config
