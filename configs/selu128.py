"""The SELU DCGAN at 128x128: the recipe that converged when BN+ReLU did not.

    python main.py --config=configs/selu128.py --workdir=runs/selu128 \\
        --config.data.dir=DIR_OF_CAT_FACES_128

DCGAN-128 with SELU activations and LeCun-normal init instead of BatchNorm
in both networks (Jolicoeur-Martineau's 128px 'meow generator' cats), Adam
lr 2e-4, beta1 0.5, batch 64, non-saturating loss.

Hardware: 1 GPU (several hours). Expected: 128px cat faces that keep
improving where the BatchNorm version collapsed.
"""

from configs import default


def get_config():
  """Returns the selu128 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.num_train_steps = 50_000
  config.data.image_size = 128
  config.model.norm = 'selu'
  return config
