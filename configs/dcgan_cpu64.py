"""The DCGAN recipe for 40 CPU minutes (`cpu64` before Projected GAN).

    python main.py --config=configs/dcgan_cpu64.py --workdir=runs/dcgan_cpu64 \\
        --config.data.dir=/path/to/cat_faces_64

`/path/to/cat_faces_64` is any folder of 64 px cat faces; make one from the
CAT dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`) and check it with `python -m catgan_jax.data.scan DIR`.

Reference: the PyTorch DCGAN recipe (pytorch/examples `dcgan/main.py`, as
`dcgan64.py`: non-saturating BCE, BatchNorm, z = 100, Adam 2e-4 with betas
(0.5, 0.999) for both networks, batch 64, G's update reusing D's samples),
at half its width (ngf = ndf = 32: a quarter of the FLOPs, 2-3x the steps
per second on a CPU), with an EMA of G (decay 0.995, a time constant of 200
steps) for samples and scores, and random horizontal flips, which the
example does not use (a mirrored face is a face; the result below was
measured with them). It runs 5,500 steps (what 40 minutes gave on cores
shared with other jobs; alone, 35), not the example's 25 epochs. Scored
once, at the end.

Hardware: 2 CPU cores, 35-40 minutes. Expected, as measured with
`benchmarks/time_to_quality.py` alone on the 2 cores (2,000 samples against
9,303 faces): after 40.1 minutes of training (6,320 steps), iNat-bird FID
42.6 (KID x 100 4.41, precision 0.25, recall 0.29) and MobileNetV2 FID
162.4, where `dcgan64` reaches MobileNetV2 FID 490.4 in 38 minutes; cat
faces with eyes, noses and fur of many colours, soft in their detail
(`docs/dcgan_cpu64_40min.jpg`). `cpu64` (Projected GAN) reaches a lower
iNat-bird FID in a quarter of the time: docs/results.md.
"""

from configs import dcgan64


def get_config():
  """Returns the dcgan_cpu64 config."""
  config = dcgan64.get_config()
  config.num_train_steps = 5_500
  config.data.flip = True
  config.model.g_width = 32
  config.model.d_width = 32
  config.train.ema_decay = 0.995
  config.eval.every_steps = 0
  config.eval.num_samples = 2_000
  return config
