"""Trains configs/test.py in a workdir and dumps the final parameters.

Used by the tests to run training in a fresh process (for simulated device
counts, SIGKILL/SIGTERM and exit codes):

    python tests/run_steps.py WORKDIR OUT.npz [--config.field=value ...]

In a multi-process run (--config.distributed.*) every process writes its own
replica of the parameters to OUT.<process_index>.npz.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from ml_collections import config_flags
import jax
import numpy as np

from catgan_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from catgan_jax import parallel
from catgan_jax import train

cli.configure()

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs',
                           'test.py'))


def flat_params(state) -> dict[str, np.ndarray]:
  """Generator and discriminator params and batch stats, flattened by path."""
  host = parallel.fetch({'g': state.g.params, 'd': state.d.params,
                         'g_bs': state.g.batch_stats,
                         'd_bs': state.d.batch_stats})
  leaves = jax.tree_util.tree_flatten_with_path(host)[0]
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def main(argv):
  workdir, out = argv[1], argv[2]
  parallel.initialize(_CONFIG.value.distributed)
  state = train.train_and_evaluate(_CONFIG.value, workdir)
  if jax.process_count() > 1:
    root, ext = os.path.splitext(out)
    out = f'{root}.{jax.process_index()}{ext}'
  np.savez(out, device_count=jax.device_count(), **flat_params(state))


if __name__ == '__main__':
  app.run(main)
