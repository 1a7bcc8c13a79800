"""Trains a catgan_jax GAN: `python main.py --config=configs/X.py --workdir=DIR`.

Any config field can be overridden, e.g. `--config.loss.name=hinge`. A run
resumes from its workdir without being asked; `--start_over` moves an earlier
run aside (to `DIR/previous/<n>/`) and starts at step 0. A bad config, data
folder, feature-weights path or workdir stops the run before it writes
anything, with one line naming the field and value, and exit code 2.
Framework notices are hidden unless `--verbosity=1`.
"""

from catgan_jax import cli

cli.configure()

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
from ml_collections import config_flags
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (see configs/).', lock_config=True
)
flags.DEFINE_string('workdir', None, 'Run directory (checkpoints, logs).')
flags.DEFINE_bool(
    'distributed',
    False,
    'Initialise jax.distributed (same as '
    '--config.distributed.enabled=True).',
)
flags.DEFINE_bool(
    'start_over',
    False,
    'Move an earlier run in --workdir aside (to '
    'workdir/previous/<n>/) and start again at step 0.',
)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv  # cli.run refuses extra arguments.
  # Imported once the flags are good: a mistyped flag is answered at once,
  # without starting TensorFlow.
  from catgan_jax import parallel  # pylint: disable=g-import-not-at-top
  from catgan_jax import train  # pylint: disable=g-import-not-at-top

  if not FLAGS.workdir.strip():
    raise cli.UserError("--workdir='' must name the run directory")
  config = FLAGS.config
  if FLAGS.distributed:
    with config.unlocked():
      config.distributed.enabled = True
  parallel.initialize(config.distributed)
  train.train_and_evaluate(config, FLAGS.workdir, start_over=FLAGS.start_over)


if __name__ == '__main__':
  cli.run(main)
