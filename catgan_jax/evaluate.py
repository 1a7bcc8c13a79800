"""Scores every checkpoint of a run (FID, KID, IS, precision/recall): a table.

  python -m catgan_jax.evaluate --workdir runs/x [--num_samples N]
      [--steps 2000,4000] [--json scores.json]
      [--features mobilenet_v2 --features_path /path/to/weights.tflite]

The feature network, sample count and reference set are the run's own
(`eval.*` in its config.json) unless a flag says otherwise; the scoring is
the trainer's own `Scorer`, so a checkpoint scores here what the trainer
logged for it, from the same reference cache.
"""

from collections.abc import Sequence
import json
import math
import os

from absl import flags
from absl import logging

from catgan_jax import checkpoint
from catgan_jax import cli
from catgan_jax import config_lib
from catgan_jax import inference
from catgan_jax.evaluation import scorer


def checkpoint_steps(workdir: str) -> list[int | str]:
  """Steps of the run's checkpoints, and 'best' if it is kept apart.

  The best-by-FID checkpoint lives in its own directory and may be older
  than every regular checkpoint still kept; it is then listed as 'best'.
  """
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


def score_checkpoints(
    workdir: str,
    steps: Sequence[int | str] | None = None,
    num_samples: int = 0,
    cache_dir: str | None = None,
    features: str = '',
    features_path: str | None = None,
) -> list[dict[str, float]]:
  """FID, KID and Inception Score of checkpoints of a run.

  Args:
    workdir: the run directory.
    steps: checkpoint steps (or 'best' / 'latest'); None = all of them.
    num_samples: generated images per score (0 = the run's eval.num_samples).
    cache_dir: reference-feature cache (None = the run's eval.cache_dir).
    features: feature network ('' = the run's eval.features).
    features_path: its weights file (None = the run's eval.features_path).

  Returns:
    One {'step', 'fid', 'kid', 'kid_std', 'is_mean', 'is_std'} per
    checkpoint, in order.

  Raises:
    cli.UserError: no run or no checkpoint in `workdir`, or unusable
      feature weights (before anything is scored).
  """
  config = config_lib.load_config(workdir)
  with config.unlocked():
    if num_samples:
      config.eval.num_samples = num_samples
    if cache_dir is not None:
      config.eval.cache_dir = cache_dir
    if features:
      config.eval.features = features
      if features_path is None:
        config.eval.features_path = ''
    if features_path is not None:
      config.eval.features_path = features_path
  steps = list(steps) if steps is not None else checkpoint_steps(workdir)
  if not steps:
    raise cli.UserError(f'no checkpoints in --workdir={workdir!r}')
  run_scorer = scorer.Scorer(config)
  rows = []
  for step in steps:
    _, sample, chosen = inference.load_generator(workdir, step)
    scores = run_scorer.score(sample)
    rows.append({'step': chosen, **scores})
    logging.info('Step %d: %s', chosen, scores)
  return rows


def format_table(rows: Sequence[dict[str, float]]) -> str:
  """A text table: step, FID, KID +- std, IS +- std, P, R; lowest FID marked.

  The IS columns appear when the rows have them ('is_mean', 'is_std'), the
  precision and recall columns likewise ('precision', 'recall').
  """
  finite = [r['fid'] for r in rows if math.isfinite(r['fid'])]
  best = min(finite) if finite else None
  with_is = bool(rows) and all('is_mean' in r for r in rows)
  with_pr = bool(rows) and all('precision' in r for r in rows)
  header = f'{"step":>10}  {"FID":>10}  {"KID":>10}  {"KID std":>10}'
  if with_is:
    header += f'  {"IS":>8}  {"IS std":>8}'
  if with_pr:
    header += f'  {"precision":>9}  {"recall":>6}'
  lines = [header]
  for r in rows:
    mark = '  <- lowest FID' if r['fid'] == best else ''
    line = (
        f'{r["step"]:>10d}  {r["fid"]:>10.3f}  {r["kid"]:>10.5f}  '
        f'{r["kid_std"]:>10.5f}'
    )
    if with_is:
      line += f'  {r["is_mean"]:>8.3f}  {r["is_std"]:>8.3f}'
    if with_pr:
      line += f'  {r["precision"]:>9.3f}  {r["recall"]:>6.3f}'
    lines.append(line + mark)
  return '\n'.join(lines)


def _define_flags() -> None:
  # Defined only when run as a program (no clash with the trainer's flags).
  flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
  flags.DEFINE_list(
      'steps',
      [],
      "Checkpoints to score (N, 'best', " "'latest'); default: all.",
  )
  flags.DEFINE_integer(
      'num_samples', 0, 'Generated images per score (0 = eval.num_samples).'
  )
  flags.DEFINE_string(
      'cache_dir', None, 'Reference cache directory (default: eval.cache_dir).'
  )
  flags.DEFINE_string(
      'features',
      '',
      "Feature network: 'inception_v3', 'mobilenet_v2' or 'mobilenet_v2_inat' "
      "(default: the run's eval.features).",
  )
  flags.DEFINE_string(
      'features_path',
      None,
      'Weights file of the feature network (default: the '
      "run's eval.features_path).",
  )
  flags.DEFINE_string('json', '', 'Also write the scores to this JSON file.')


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses extra arguments.
  f = flags.FLAGS
  steps = [int(s) if s.isdigit() else s for s in f.steps] or None
  if f.json and os.path.isdir(f.json):
    raise cli.UserError(f'--json={f.json!r} is a folder, not a file')
  rows = score_checkpoints(
      f.workdir, steps, f.num_samples, f.cache_dir, f.features, f.features_path
  )
  # The table is this program's output, hence stdout.
  print(format_table(rows))
  if f.json:
    with open(f.json, 'w') as out:
      json.dump(rows, out, indent=2)


if __name__ == '__main__':
  cli.configure()
  _define_flags()
  cli.run(main)
