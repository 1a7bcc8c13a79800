"""Scores every checkpoint of a run (FID, KID) and prints a table.

  python -m catgan_jax.evaluate --workdir runs/x [--num_samples N]
      [--steps 2000,4000] [--json scores.json]

The feature network, sample count and reference set are the run's own
(`eval.*` in its config.json), and the latents are drawn as the trainer
draws them, so a checkpoint scores here what the trainer logged for it. The
reference features come from the same cache as the trainer's.
"""

from collections.abc import Callable, Sequence
import json
import math
import os

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np

from catgan_jax import checkpoint
from catgan_jax import config_lib
from catgan_jax import evaluation
from catgan_jax.data import sources
from catgan_jax.evaluation import features
from catgan_jax.evaluation import reference
from catgan_jax.evaluation import scorer


def _check_run(workdir: str) -> None:
  if not os.path.isfile(os.path.join(workdir, config_lib.CONFIG_FILE)):
    raise ValueError(f'No run in {workdir}: {config_lib.CONFIG_FILE} is '
                     'missing.')


def checkpoint_steps(workdir: str) -> list[int | str]:
  """Steps of the run's checkpoints, and 'best' if it is kept apart.

  The best-by-FID checkpoint lives in its own directory and may be older
  than every regular checkpoint still kept; it is then listed as 'best'.
  """
  _check_run(workdir)
  config = config_lib.load_config(workdir)
  keep = config.get('keep_checkpoints', 3)
  steps: list[int | str] = []
  if os.path.isdir(os.path.join(workdir, checkpoint.CHECKPOINT_DIR)):
    ckpt = checkpoint.Checkpointer(workdir, keep=keep)
    steps = sorted(ckpt.all_steps())
    ckpt.close()
  if os.path.isdir(os.path.join(workdir, checkpoint.BEST_DIR)):
    best = checkpoint.Checkpointer(workdir, keep=keep, best_by='fid')
    best_step = best.best_step()
    best.close()
    if best_step is not None and best_step not in steps:
      steps.append('best')
  return steps


def reference_features(
    config: ml_collections.ConfigDict,
    feature_fn: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
  """The training set's features, from the trainer's cache when present."""
  ev = config.eval
  num_real = ev.num_reference or len(sources.load_source(config))
  # The trainer's scorer names the dataset and reads its images; sharing it
  # keeps one cache entry per dataset.
  path = reference.cache_path(
      ev.cache_dir, scorer.dataset_identity(config),
      config.data.image_size, ev.features, num_real)
  return reference.reference_features(
      scorer.real_images(config, ev.batch_size),
      feature_fn, path, max_images=num_real)


def trainer_noise(seed: int, z_dim: int) -> Callable[[int], np.ndarray]:
  """The latents of the trainer's evaluations: call i draws from key i."""
  key = jax.random.PRNGKey(seed + 2)
  calls = iter(range(1 << 30))
  return lambda n: jax.random.normal(jax.random.fold_in(key, next(calls)),
                                     (n, z_dim))


def score_checkpoints(
    workdir: str,
    steps: Sequence[int | str] | None = None,
    num_samples: int = 0,
    cache_dir: str | None = None,
) -> list[dict[str, float]]:
  """FID and KID of checkpoints of a run.

  Args:
    workdir: the run directory.
    steps: checkpoint steps (or 'best' / 'latest'); None = all of them.
    num_samples: generated images per score (0 = the run's eval.num_samples).
    cache_dir: reference-feature cache (None = the run's eval.cache_dir).

  Returns:
    One {'step', 'fid', 'kid', 'kid_std'} per checkpoint, in order.

  Raises:
    ValueError: when the run has no checkpoint.
  """
  _check_run(workdir)
  config = config_lib.load_config(workdir)
  with config.unlocked():
    if num_samples:
      config.eval.num_samples = num_samples
    if cache_dir is not None:
      config.eval.cache_dir = cache_dir
  steps = list(steps) if steps is not None else checkpoint_steps(workdir)
  if not steps:
    raise ValueError(f'No checkpoints in {workdir}.')
  ev = config.eval
  feature_fn = features.get_feature_fn(ev.features, ev.features_path,
                                       batch_size=ev.batch_size)
  ref = reference_features(config, feature_fn)
  rows = []
  for step in steps:
    _, sample, chosen = checkpoint.load_generator(workdir, step)
    noise = trainer_noise(config.seed, config.model.z_dim)
    scores = evaluation.evaluate(
        lambda n: sample(noise(n)), ref, feature_fn, ev.num_samples,  # pylint: disable=cell-var-from-loop
        ev.batch_size, ev.kid_subsets, ev.kid_subset_size)
    rows.append({'step': chosen, **scores})
    logging.info('Step %d: %s', chosen, scores)
  return rows


def format_table(rows: Sequence[dict[str, float]]) -> str:
  """A text table: step, FID, KID +- std; the lowest FID is marked."""
  finite = [r['fid'] for r in rows if math.isfinite(r['fid'])]
  best = min(finite) if finite else None
  lines = [f'{"step":>10}  {"FID":>10}  {"KID":>10}  {"KID std":>10}']
  for r in rows:
    mark = '  <- lowest FID' if r['fid'] == best else ''
    lines.append(f'{r["step"]:>10d}  {r["fid"]:>10.3f}  {r["kid"]:>10.5f}  '
                 f'{r["kid_std"]:>10.5f}{mark}')
  return '\n'.join(lines)


def _define_flags() -> None:
  # Defined only when run as a program (no clash with the trainer's flags).
  flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
  flags.DEFINE_list('steps', [], "Checkpoints to score (N, 'best', "
                    "'latest'); default: all.")
  flags.DEFINE_integer('num_samples', 0,
                       'Generated images per score (0 = eval.num_samples).')
  flags.DEFINE_string('cache_dir', None,
                      'Reference cache directory (default: eval.cache_dir).')
  flags.DEFINE_string('json', '', 'Also write the scores to this JSON file.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  f = flags.FLAGS
  steps = [int(s) if s.isdigit() else s for s in f.steps] or None
  try:
    rows = score_checkpoints(f.workdir, steps, f.num_samples, f.cache_dir)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  # The table is this program's output, hence stdout.
  print(format_table(rows))
  if f.json:
    with open(f.json, 'w') as out:
      json.dump(rows, out, indent=2)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
