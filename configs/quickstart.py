"""Quickstart: a small DCGAN on the built-in synthetic cat faces, offline.

    python main.py --config=configs/quickstart.py --workdir=runs/quickstart

Hardware: a laptop CPU (2 cores). Time: a few minutes. Result: sample grids
in runs/quickstart/samples/ go from noise to recognisable drawn cat faces
(coloured heads with ears and eyes); TensorBoard shows d_loss/g_loss.
"""

from configs import default


def get_config():
  """Returns the quickstart config."""
  config = default.get_config()
  config.batch_size = 32
  config.num_train_steps = 600
  config.log_every_steps = 20
  config.sample_every_steps = 100
  config.checkpoint_every_steps = 200
  config.data.source = 'synthetic'
  config.data.image_size = 32
  config.data.num_synthetic = 2048
  config.model.z_dim = 64
  config.model.g_width = 32
  config.model.d_width = 32
  config.eval.every_steps = -1
  return config
