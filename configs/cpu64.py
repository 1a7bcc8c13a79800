"""The best 64 px cats this codebase makes in 40 minutes on 2 CPU cores.

    python main.py --config=configs/cpu64.py --workdir=runs/cpu64 \\
        --config.data.dir=/path/to/cat_faces_64

`/path/to/cat_faces_64` is any folder of 64 px cat faces; make one from the
CAT dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`) and check it with `python -m catgan_jax.data.scan DIR`.

The PyTorch DCGAN recipe (`dcgan64.py`: non-saturating BCE, BatchNorm,
Adam 2e-4 with betas (0.5, 0.999) for both networks, batch 64, G's update
reusing D's samples) at half the width (ngf = ndf = 32: a quarter of the
FLOPs, so about 2.5x the steps per second on a CPU), with an EMA of G
(decay 0.995, a time constant of 200 steps) for samples and scores.
"""

from configs import dcgan64


def get_config():
  """Returns the cpu64 config."""
  config = dcgan64.get_config()
  config.num_train_steps = 5_000
  config.model.g_width = 32
  config.model.d_width = 32
  config.train.ema_decay = 0.995
  config.eval.every_steps = 1_000
  config.eval.num_samples = 2_000
  return config
