"""Trains a catgan_jax GAN: `python main.py --config=configs/X.py --workdir=DIR`.

Any config field can be overridden, e.g. `--config.loss.name=hinge`. A run
resumes from its workdir without being asked. A bad config or workdir stops
with one line naming the field and value, and exit code 2.
"""

import logging as std_logging
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from catgan_jax import config_lib
from catgan_jax import parallel
from catgan_jax import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (see configs/).',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Run directory (checkpoints, logs).')
flags.DEFINE_bool('distributed', False,
                  'Initialise jax.distributed (same as '
                  '--config.distributed.enabled=True).')
flags.mark_flags_as_required(['config', 'workdir'])


def _quiet_library_info(record) -> bool:
  """Drops orbax's per-save INFO chatter; its warnings and errors stay."""
  # Records carry the standard levels (absl.logging.WARNING is absl's -1).
  return (record.levelno >= std_logging.WARNING
          or '/orbax/' not in record.pathname)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_quiet_library_info)
  config = FLAGS.config
  if FLAGS.distributed:
    with config.unlocked():
      config.distributed.enabled = True
  parallel.initialize(config.distributed)
  try:
    train.train_and_evaluate(config, FLAGS.workdir)
  except config_lib.ConfigError as e:
    logging.error('Config error: %s', e)
    print(f'catgan_jax: config error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(main)
