"""DCGAN (Radford et al. 2015) at 64x64 on real cat faces.

    python main.py --config=configs/dcgan64.py --workdir=runs/dcgan64 \\
        --config.data.dir=../shared/data/cat_faces_64

Reproduces the standard PyTorch DCGAN recipe (z=100, ngf=ndf=64, BatchNorm,
non-saturating BCE, Adam beta1=0.5) with the slower discriminator learning
rate the cat experiments settled on (D 5e-5, G 2e-4), which keeps D from
overpowering G on a few thousand faces.

Hardware: 1 GPU (or CPU, slowly: ~0.6-0.7 steps/s at batch 64 on 2 cores).
Expected: recognisable cat faces after ~5k steps; see the README results
table for the measured FID.

Measured on ../shared/data/cat_faces_64 (seed 0): with D at 5e-5 the
generator fooled the slow discriminator from the start (D(G(z)) ~0.8) and
collapsed to one grey texture for every z by step 100, still collapsed at
step 350; with the PyTorch recipe's D rate, `--config.optim.d_lr=2e-4`, it
drew varied face-like blobs by step 100 (the README results run). The
PyTorch reference networks with D at 5e-5 collapse the same way
(`sample_std` 0.018, 0.013, 0.0098 at steps 100-300, against 0.017, 0.012,
0.010 here; `benchmarks/peer_training_curve.py --d-lr 5e-5`).
"""

from configs import default


def get_config():
  """Returns the DCGAN-64 config."""
  config = default.get_config()
  config.batch_size = 64
  config.num_train_steps = 20_000
  config.data.source = 'folder'
  config.data.image_size = 64
  config.model.name = 'dcgan'
  config.loss.name = 'nsgan'
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 5e-5
  config.optim.b1 = 0.5
  config.eval.every_steps = 5_000
  return config
