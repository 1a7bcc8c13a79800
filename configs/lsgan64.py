"""LSGAN (Mao et al. 2017) on 64x64 cats.

    python main.py --config=configs/lsgan64.py --workdir=runs/lsgan64 \\
        --config.data.dir=../shared/data/cat_faces_64

Follows Deep-learning-with-cats `Generating cats/LSGAN.py` (argparse
defaults): least-squares losses 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]
and 1/2 E[(D(G(z)) - c)^2] with a=0 (fake), b=1 (real), c=1 (G's target);
DCGAN-64 with BatchNorm, ngf = ndf = 128, z = 100, batch 64; Adam lr 1e-4
for both networks, betas (0.5, 0.999); G's update reuses D's fake batch
(`train.g_samples='reuse'`, as the code does). No differences in the
recipe; the reference trains for epochs (n_epoch=1000), num_train_steps
counts iterations.

Hardware: 1 GPU. Expected (from the cat experiments; the full run has not
been measured here): faces, but LSGAN on cats is known to collapse suddenly
(cats to noise between two epochs): the divergence guard (train.max_loss)
and EMA samples help; watch the FID curve. Measured on 2 CPU cores, the
first 500 steps (`--config.num_train_steps=500`, 11 min; at the earlier
width 64, before this config followed LSGAN.py's 128) gave no faces: the
same grey noise in every sample at every grid from step 100 to 500
(`sample_std` 0.032, 0.019, 0.014, 0.012, 0.011; real faces 0.25),
MobileNetV2 FID 940.0 at step 500, where the dcgan64 (nsgan) run with D at
2e-4 had grey face shapes (FID 777.9; README "Results"). The PyTorch
reference networks trained the same way (`benchmarks/peer_training_curve.py
--loss lsgan --lr 1e-4`) collapse the same: 0.033, 0.019, 0.014, 0.012,
0.010 (README "Checked against the PyTorch reference").
"""

from configs import default


def get_config():
  """Returns the lsgan64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.num_train_steps = 50_000
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
