"""Training curves of a run, drawn from its `metrics.jsonl` as PNG files.

`metrics.jsonl` holds one JSON object per logged step (keys such as step,
d_loss, g_loss, d_real_acc, d_fake_acc, D_x, D_G_z, fid, kid; any may be
missing). The trainer calls `plot_metrics` at the end of a run; to draw a
run on demand:

  python -m catgan_jax.plots --workdir runs/x
"""

from collections.abc import Sequence
import math
import os

from absl import flags
from absl import logging
import matplotlib

# A headless backend: plots are drawn on servers without a display.
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from catgan_jax import cli  # pylint: disable=g-import-not-at-top
from catgan_jax import metrics_log  # pylint: disable=g-import-not-at-top
from catgan_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
from catgan_jax.metrics_log import METRICS_FILE  # pylint: disable=g-import-not-at-top


# One figure per entry: file name, title, y label and the curves it holds
# (metric key, legend label). Figures whose keys never appear are skipped.
FIGURES = (
    (
        'losses.png',
        'Losses',
        'loss',
        (('d_loss', 'D loss'), ('g_loss', 'G loss')),
    ),
    (
        'd_accuracy.png',
        'Discriminator accuracy',
        'accuracy',
        (('d_real_acc', 'on real'), ('d_fake_acc', 'on fake')),
    ),
    (
        'd_outputs.png',
        'Mean discriminator output',
        'mean D',
        (('D_x', 'D(x)'), ('D_G_z', 'D(G(z))')),
    ),
    ('fid.png', 'FID', 'FID', (('fid', 'FID'),)),
    ('kid.png', 'KID', 'KID', (('kid', 'KID'),)),
    (
        'sample_std.png',
        'Pixel std across the fixed-noise samples',
        'std in [0, 1] units',
        (('sample_std', 'samples'),),
    ),
)


def _series(
    records: Sequence[dict[str, float]], key: str
) -> tuple[list[float], list[float]]:
  """(steps, values) of the records that hold a finite number for `key`."""
  steps, values = [], []
  for i, record in enumerate(records):
    value = record.get(key)
    if isinstance(value, (int, float)) and math.isfinite(value):
      steps.append(record.get('step', i))
      values.append(float(value))
  return steps, values


def plot_metrics(metrics_path: str, out_dir: str) -> list[str]:
  """Draws the training curves of one run.

  Args:
    metrics_path: path of the run's `metrics.jsonl`.
    out_dir: directory for the PNG files (created if needed).

  Returns:
    The paths of the PNG files written (figures with no data are skipped;
    nothing is written when the file does not exist yet).
  """
  if not os.path.exists(metrics_path):
    logging.warning('No metrics to plot: %s does not exist.', metrics_path)
    return []
  records = metrics_log.read_records(metrics_path)
  os.makedirs(out_dir, exist_ok=True)
  written = []
  for file_name, title, ylabel, curves in FIGURES:
    series = [(label, *_series(records, key)) for key, label in curves]
    series = [s for s in series if s[1]]
    if not series:
      continue
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for label, steps, values in series:
      # Scores come every few thousand steps: markers keep lone points visible.
      marker = 'o' if len(steps) < 50 else None
      ax.plot(steps, values, label=label, marker=marker, linewidth=1)
    ax.set_title(title)
    ax.set_xlabel('step')
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
      ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, file_name)
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
  logging.info('Wrote %d plots to %s.', len(written), out_dir)
  return written


def _define_flags() -> None:
  # Defined only when run as a program: the trainer imports this module, and
  # its own --workdir flag must not clash with this one.
  flags.DEFINE_string(
      'workdir', None, 'Run directory holding metrics.jsonl.', required=True
  )
  flags.DEFINE_string(
      'out', '', 'Directory for the PNG files (default: <workdir>/plots).'
  )


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses extra arguments.
  workdir = flags.FLAGS.workdir
  metrics_path = os.path.join(workdir, METRICS_FILE)
  if not os.path.isfile(metrics_path):
    raise cli.UserError(
        f'no {METRICS_FILE} in --workdir={workdir!r} (is it '
        'a run directory?)'
    )
  if not metrics_log.read_records(metrics_path):
    raise cli.UserError(f'{metrics_path} holds no metric record to plot')
  out_dir = flags.FLAGS.out or os.path.join(workdir, 'plots')
  # Drawing into the run directory takes its lock, as generate and
  # evaluate do: a trainer there would redraw the same files at its end.
  with workdir_lib.claim_if_inside(workdir, out_dir):
    workdir_lib.check_writable(
        [workdir_lib.Output(out_dir, 'dir', '--out' if flags.FLAGS.out else '')]
    )
    for path in plot_metrics(metrics_path, out_dir):
      logging.info('Wrote %s', path)


if __name__ == '__main__':
  _define_flags()
  cli.run(main, uses_tensorflow=False)
