"""CPU-sized config for the tests: tiny networks, 16px synthetic cats, 4 steps.

    python main.py --config=configs/test.py --workdir=/tmp/catgan_test

Hardware: any CPU. Time: about 10 s, most of it compilation. Result: no
quality claim; it proves the whole path (data, step, logging, samples,
checkpoints, resume) works.
"""

from configs import default


def get_config():
  """Returns the test config."""
  config = default.get_config()
  config.batch_size = 8
  config.num_train_steps = 4
  config.log_every_steps = 1
  config.sample_every_steps = 2
  config.checkpoint_every_steps = 2
  config.keep_checkpoints = 3
  config.data.source = 'synthetic'
  config.data.image_size = 16
  config.data.num_synthetic = 64
  config.data.min_size = 8
  config.model.z_dim = 16
  config.model.g_width = 8
  config.model.d_width = 8
  config.eval.every_steps = -1
  config.eval.num_samples = 64
  config.eval.batch_size = 32
  return config
