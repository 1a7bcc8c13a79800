"""Scores every checkpoint of a run (FID, KID, IS, precision/recall): a table.

  python -m catgan_jax.evaluate --workdir runs/x [--num_samples N]
      [--steps 2000,4000] [--json scores.json]
      [--features mobilenet_v2 --features_path /path/to/weights.tflite]
      [--per_class]

The feature network, sample count and reference set are the run's own
(`eval.*` in its config.json) unless a flag says otherwise; the scoring is
the trainer's own `Scorer`, so a checkpoint scores here what the trainer
logged for it, from the same reference cache. A class-conditional run is
scored on labels drawn from its data's class frequencies; --per_class (or
its eval.per_class) adds intra-FID, the mean of per-class FIDs.

Every argument is checked before the first score: each of --steps is a
checkpoint of the run, --json can be written (and is not inside a workdir a
trainer is writing). A checkpoint that cannot be restored is skipped with a
warning when all are scored ('latest' is the newest that restores); the
scores already computed are kept in --json whatever happens next.
"""

from collections.abc import Iterator, Sequence
import json
import math
import os

from absl import flags
from absl import logging

from catgan_jax import checkpoint
from catgan_jax import cli
from catgan_jax import config_lib
from catgan_jax import inference
from catgan_jax import workdir as workdir_lib
from catgan_jax.evaluation import scorer

_NAMED_STEPS = ('best', 'latest')


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


def parse_steps(values: Sequence[str]) -> list[int | str] | None:
  """--steps as step numbers and names; None (all) when empty.

  Raises:
    cli.UserError: a value is neither a number nor 'best' / 'latest'.
  """
  for value in values:
    if not (value.isdigit() or value in _NAMED_STEPS):
      raise cli.UserError(
          f'--steps={",".join(values)}: {value!r} is not a checkpoint step, '
          "'best' or 'latest'"
      )
  return [int(v) if v.isdigit() else v for v in values] or None


def check_steps(workdir: str, steps: Sequence[int | str]) -> None:
  """Refuses steps that are not checkpoints of the run (before any score)."""
  available = checkpoint_steps(workdir)
  missing = [s for s in steps if s not in available and s not in _NAMED_STEPS]
  if missing:
    raise cli.UserError(
        f'--steps: no checkpoint {missing[0]} in --workdir={workdir!r} '
        f'(available: {available or "none"})'
    )


def score_checkpoints(
    workdir: str,
    steps: Sequence[int | str] | None = None,
    num_samples: int = 0,
    cache_dir: str | None = None,
    features: str = '',
    features_path: str | None = None,
    per_class: bool | None = None,
) -> list[dict[str, float]]:
  """FID, KID and Inception Score of checkpoints of a run.

  `iter_scores`, collected.
  """
  return list(
      iter_scores(
          workdir,
          steps,
          num_samples,
          cache_dir,
          features,
          features_path,
          per_class,
      )
  )


def iter_scores(
    workdir: str,
    steps: Sequence[int | str] | None = None,
    num_samples: int = 0,
    cache_dir: str | None = None,
    features: str = '',
    features_path: str | None = None,
    per_class: bool | None = None,
) -> Iterator[dict[str, float]]:
  """FID, KID and Inception Score of checkpoints of a run, one at a time.

  Args:
    workdir: the run directory.
    steps: checkpoint steps (or 'best' / 'latest'); None = all of them.
    num_samples: generated images per score (0 = the run's eval.num_samples).
    cache_dir: reference-feature cache (None = the run's eval.cache_dir).
    features: feature network ('' = the run's eval.features).
    features_path: its weights file (None = the run's eval.features_path).
    per_class: add intra-FID (None = the run's eval.per_class).

  Yields:
    One {'step', 'fid', 'kid', 'kid_std', 'is_mean', 'is_std'} per
    checkpoint, in order ('intra_fid' and each 'fid_class_<c>' too with
    per_class). With `steps` None, a checkpoint that cannot be
    restored is skipped with a warning.

  Raises:
    cli.UserError: no run or no checkpoint in `workdir`, or unusable
      feature weights (before anything is scored); a checkpoint named in
      `steps` that cannot be restored.
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
    if per_class is not None:
      config.eval.per_class = per_class
  if config.eval.get('per_class') and not config.data.get('num_classes', 0):
    raise cli.UserError(
        f'--per_class: the run in --workdir={workdir!r} is unconditional '
        '(data.num_classes=0)'
    )
  # The flags' settings, checked as the trainer checks its config.
  config_lib.check_eval(config.eval)
  config_lib.check_path_kinds(config)
  every = steps is None
  steps = checkpoint_steps(workdir) if every else list(steps)
  if not steps:
    raise cli.UserError(f'no checkpoints in --workdir={workdir!r}')
  check_steps(workdir, steps)
  run_scorer = scorer.Scorer(config)
  scored = 0
  for step in steps:
    try:
      _, sample, chosen = inference.load_generator(workdir, step)
    except cli.UserError as e:
      if not every:
        raise
      logging.warning('Skipped: %s', e)
      continue
    scores = run_scorer.score(sample)
    scored += 1
    logging.info('Step %d: %s', chosen, scores)
    yield {'step': chosen, **scores}
  if not scored:
    raise cli.UserError(
        f'no checkpoint in --workdir={workdir!r} can be restored'
    )


def format_table(rows: Sequence[dict[str, float]]) -> str:
  """A text table: step, FID, KID +- std, IS +- std, P, R; lowest FID marked.

  The IS columns appear when the rows have them ('is_mean', 'is_std'), the
  precision and recall columns likewise ('precision', 'recall'), and the
  intra-FID column ('intra_fid').
  """
  finite = [r['fid'] for r in rows if math.isfinite(r['fid'])]
  best = min(finite) if finite else None
  with_is = bool(rows) and all('is_mean' in r for r in rows)
  with_pr = bool(rows) and all('precision' in r for r in rows)
  with_intra = bool(rows) and all('intra_fid' in r for r in rows)
  header = f'{"step":>10}  {"FID":>10}  {"KID":>10}  {"KID std":>10}'
  if with_is:
    header += f'  {"IS":>8}  {"IS std":>8}'
  if with_pr:
    header += f'  {"precision":>9}  {"recall":>6}'
  if with_intra:
    header += f'  {"intra-FID":>10}'
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
    if with_intra:
      line += f'  {r["intra_fid"]:>10.3f}'
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
  flags.DEFINE_boolean(
      'per_class',
      None,
      'Add intra-FID (the mean of per-class FIDs) of a class-conditional '
      "run (default: the run's eval.per_class).",
  )
  flags.DEFINE_string('json', '', 'Also write the scores to this JSON file.')


def _write_json(rows: Sequence[dict[str, float]], path: str) -> None:
  """Writes the rows to `path` atomically (a kill leaves the last version)."""
  tmp = path + '.tmp'
  with open(tmp, 'w') as out:
    json.dump(list(rows), out, indent=2)
  os.replace(tmp, path)


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses extra arguments.
  f = flags.FLAGS
  steps = parse_steps(f.steps)
  if f.json:
    workdir_lib.check_writable([workdir_lib.Output(f.json, 'file', '--json')])
  rows = []
  with (
      workdir_lib.claim_if_inside(f.workdir, f.json),
      cli.library_log(cli.reader_library_log()),
  ):
    try:
      for row in iter_scores(
          f.workdir,
          steps,
          f.num_samples,
          f.cache_dir,
          f.features,
          f.features_path,
          f.per_class,
      ):
        rows.append(row)
        if f.json:
          _write_json(rows, f.json)
    finally:
      # The table is this program's output, hence stdout; what was scored
      # is shown even when a later checkpoint fails.
      if rows:
        print(format_table(rows))


if __name__ == '__main__':
  cli.configure()
  _define_flags()
  cli.run(main)
