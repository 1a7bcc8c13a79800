"""The best 64 px cats this codebase makes in 40 minutes on 2 CPU cores.

    python main.py --config=configs/cpu64.py --workdir=runs/cpu64 \\
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
measured with them). It runs 5,500 steps, what 40 minutes give, not the
example's 25 epochs. Scored once, at the end.

Hardware: 2 CPU cores, about 40 minutes. Expected, as measured with
`benchmarks/time_to_quality.py` (40 minutes of training on 2 cores shared
with other jobs at first): 5,342 steps in 39.4 minutes, MobileNetV2 FID
205.5 and KID x 100 44.3 (2,000 samples against 9,303 faces), where
`dcgan64` reaches 490.4 in the same budget; cat faces with eyes, noses and
fur of many colours (`docs/cpu64_40min.jpg`). How it was chosen:
`docs/results.md`.
"""

from configs import dcgan64


def get_config():
  """Returns the cpu64 config."""
  config = dcgan64.get_config()
  config.num_train_steps = 5_500
  config.data.flip = True
  config.model.g_width = 32
  config.model.d_width = 32
  config.train.ema_decay = 0.995
  config.eval.every_steps = 0
  config.eval.num_samples = 2_000
  return config
