"""DCGAN (Radford et al. 2015) at 64x64: the standard PyTorch recipe, on cats.

    python main.py --config=configs/dcgan64.py --workdir=runs/dcgan64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`) and check it with `python -m catgan_jax.data.scan DIR`.

Follows the PyTorch DCGAN example (pytorch/examples `dcgan/main.py` and the
PyTorch DCGAN tutorial): z = 100, ngf = ndf = 64, BatchNorm + ReLU in G,
BatchNorm + LeakyReLU(0.2) in D, N(0, 0.02) init, non-saturating BCE, Adam
2e-4 with betas (0.5, 0.999) for both networks, batch 64; G's update reuses
D's fake batch (`train.g_samples='reuse'`, as the example does); no random
flips (the example has none). It runs the example's 25 epochs (`--niter`)
as iterations over the 9,304 CAT faces of at least 64 px: 146 batches of 64
per epoch (the last one short), 3,650 iterations. The cat-experiments
variant (width 128, D 5e-5) is `dcgan_cats64.py`.

Hardware: 1 GPU (minutes), or a CPU (0.6-0.8 steps/s on 2 cores: about
1.5 h). Expected: varied cat faces; on 2 CPU cores, recognisable faces
after 1,000 steps and MobileNetV2 FID 490 after 1,872 steps, 38 minutes of
training (`benchmarks/results/ttq_dcgan64_cpu.json`, the results table in
the README; measured with random flips, `--config.data.flip=True`). In the
same 40 minutes `dcgan_cpu64.py` reaches 206.
"""

import math

from configs import default


def get_config():
  """Returns the DCGAN-64 config."""
  config = default.get_config()
  config.batch_size = 64
  # 25 epochs (the example's --niter) of 9,304 faces in batches of 64.
  config.num_train_steps = 25 * math.ceil(9_304 / 64)
  config.data.source = 'folder'
  config.data.image_size = 64
  config.model.name = 'dcgan'
  config.model.g_width = 64
  config.model.d_width = 64
  config.loss.name = 'nsgan'
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.eval.every_steps = 5_000
  return config
