"""A study: several arms x seeds of ordinary runs, scored alike, summarised.

  python -m catgan_jax.study --config=configs/study/losses32.py \\
      --workdir=runs/study [--parallel=N] [--max_runs=N]

A study config (see `configs/study/`) holds:
  base: a complete run config (configs/default.py's fields);
  arms: name -> overrides of the base, nested as the config
      ({'loss': {'name': 'wgan', 'clip': 0.01}});
  seeds: the seeds every arm runs with;
  num_train_steps: the budget of every run in steps, or 0 with
  budget_minutes: the budget of every run in minutes of training (one of
      the two is set, the other 0);
  score_points: checkpoints scored per run, evenly spaced up to the end
      of the budget (the FID-against-time curves);
  scorers: name -> {'features', 'features_path'}: every run is scored by
      each of these feature networks;
  num_samples: generated images per score.

Every (arm, seed) is an ordinary training run (`train.train_and_evaluate`)
in `workdir/<arm>/seed<seed>/`, so it resumes like any run, and a study that
is stopped resumes where it stopped: a run whose `study_result.json` exists
is not run again. The runs train one after another, or `--parallel` at a
time (each in its own process); each is scored, when its training ends, by
the same scorers, against the same reference images, from the same latents
(the scorers' seed is the base config's, not the run's). The study then
writes:
  study.json: every run's config, seed, steps, training time, images/s,
      FID/KID/IS/precision/recall per scorer and checkpoint, divergences;
  study.md: per arm, the mean, std (over seeds, ddof = 1), min and max of
      each score, the rank by the first scorer's mean FID, and whether the
      arm is distinguishable from the best (Welch's t-test, p < 0.05);
  study.png: FID per arm, one dot per seed, and FID against training time.

A run's training time is the wall time of its training calls (start-up and
compilation included; several when it was resumed); with a budget in
steps, a checkpoint's time on the curve is that time scaled by its step
(steps take equal time).

A budget in minutes counts the wall time of the training loop (from the
first step; not start-up and compilation, which a resumed run pays again,
nor scoring): each run trains until that much time is spent, through the
trainer's `on_step` hook, and is checkpointed and scored at the
`score_points` fractions of it (the run is resumed for each; the time
recorded at every checkpoint is in the run's `study_budget.json`). A run
stopped part way resumes from its checkpoint with the training time
recorded at that checkpoint, so it reaches the same budget as one that was
never stopped (up to the step the budget ends in). Step counts then
differ between runs: study.json records each run's steps.

A bad study config (an override of a field the run config does not have,
a run config that does not validate, no seeds, no budget or two) is one
line and exit 2, before any run starts.
"""

from collections.abc import Mapping, Sequence
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import threading
import time
from typing import Any

from absl import flags
from absl import logging
import ml_collections
import numpy as np

from catgan_jax import cli

RESULT_FILE = 'study_result.json'
# A minutes budget's record: the training-loop time at each checkpoint.
BUDGET_FILE = 'study_budget.json'
# The summed wall time of a run's training calls (it may be resumed).
TRAIN_TIME_FILE = 'study_train_time.json'
STUDY_JSON = 'study.json'
STUDY_MD = 'study.md'
STUDY_PNG = 'study.png'
# Welch's t-test level below which an arm differs from the best.
P_LEVEL = 0.05
# Fields every arm must share: the scorers' reference images and latents.
_SHARED_FIELDS = ('data', 'model.z_dim')
_PROGRESS_EVERY_S = 30.0
# A minutes-budget run's step limit (it stops on time, long before).
_UNBOUNDED_STEPS = 10**9


class StudyError(cli.UserError):
  """A study config that cannot run; the message names the field."""


# --- The study config ---------------------------------------------------------


def _flatten(overrides: Mapping[str, Any], prefix: str = '') -> dict:
  """{'loss': {'name': 'x'}} -> {'loss.name': 'x'}."""
  flat = {}
  for key, value in overrides.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _override(
    base: ml_collections.ConfigDict, field: str, value: Any, where: str
) -> None:
  node = base
  *parents, leaf = field.split('.')
  for part in parents:
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise StudyError(f'{where}: {field} is not a run config field')
    node = node[part]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    raise StudyError(f'{where}: {field} is not a run config field')
  if isinstance(node[leaf], ml_collections.ConfigDict):
    raise StudyError(f'{where}: {field} is a section, not a field')
  try:
    node[leaf] = tuple(value) if isinstance(value, list) else value
  except (TypeError, ValueError) as e:
    raise StudyError(f'{where}: {field}={value!r}: {e}') from None


def run_name(arm: str, seed: int) -> str:
  """The run's directory under the study's workdir."""
  return os.path.join(arm, f'seed{seed}')


def run_configs(
    study: ml_collections.ConfigDict,
) -> dict[tuple[str, int], ml_collections.ConfigDict]:
  """Every (arm, seed)'s run config, in arm then seed order.

  Raises:
    StudyError: no arm or seed, an override of an unknown or shared field,
      or a budget below one step.
  """
  arms = study.get('arms') or {}
  seeds = tuple(study.get('seeds') or ())
  if not arms:
    raise StudyError('arms is empty: a study needs at least one arm')
  if not seeds:
    raise StudyError(f'seeds={seeds!r}: a study needs at least one seed')
  if len(set(seeds)) != len(seeds) or not all(
      isinstance(s, int) and s >= 0 for s in seeds
  ):
    raise StudyError(f'seeds={seeds!r} must be distinct integers >= 0')
  steps, minutes = budget(study)
  configs = {}
  for arm in arms:
    overrides = _flatten(arms[arm].to_dict())
    for field in overrides:
      if any(field == s or field.startswith(s + '.') for s in _SHARED_FIELDS):
        raise StudyError(
            f'arms.{arm}: {field} is shared by every arm (the scorers compare'
            ' all runs on the same images and latents); set it in base'
        )
    for seed in seeds:
      config = study.base.copy_and_resolve_references()
      for field, value in overrides.items():
        _override(config, field, value, f'arms.{arm}')
      config.seed = seed
      if minutes:
        if config.loss.instance_noise:
          raise StudyError(
              f'arms.{arm}: loss.instance_noise anneals over '
              'num_train_steps, which a budget_minutes run does not have'
          )
        # Checkpoints only where the run is stopped: at each score point
        # (and a signal's); a few stops more than the points are kept.
        config.num_train_steps = _UNBOUNDED_STEPS
        config.checkpoint_every_steps = _UNBOUNDED_STEPS
        config.keep_checkpoints = 2 * study.score_points + 2
      else:
        config.num_train_steps = steps
        points = _score_steps(steps, study.score_points)
        config.checkpoint_every_steps = points[0]
        config.keep_checkpoints = len(points) + 1
      # The study scores the runs itself, all with the same scorers.
      config.eval.every_steps = -1
      configs[(arm, seed)] = config
  return configs


def budget(study: ml_collections.ConfigDict) -> tuple[int, float]:
  """(num_train_steps, budget_minutes) of a study: one of them is 0.

  Raises:
    StudyError: neither or both set, or a value that is not a budget.
  """
  steps = study.get('num_train_steps', 0)
  minutes = study.get('budget_minutes', 0.0)
  if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
    raise StudyError(
        f'num_train_steps={steps!r} must be a positive integer (or 0 with '
        'budget_minutes)'
    )
  if (
      not isinstance(minutes, (int, float))
      or isinstance(minutes, bool)
      or not math.isfinite(minutes)
      or minutes < 0
  ):
    raise StudyError(
        f'budget_minutes={minutes!r} must be a positive number of training '
        'minutes (or 0 with num_train_steps)'
    )
  if steps and minutes:
    raise StudyError(
        f'num_train_steps={steps} and budget_minutes={minutes}: a run has '
        'one budget; set the other to 0'
    )
  if not steps and not minutes:
    raise StudyError(
        'num_train_steps=0 and budget_minutes=0: set one of them (the '
        'budget of every run)'
    )
  points = study.get('score_points', 1)
  if not isinstance(points, int) or points < 1:
    raise StudyError(f'score_points={points!r} must be a positive integer')
  return steps, float(minutes)


def _score_steps(steps: int, points: int) -> list[int]:
  """The checkpoint steps scored: every steps // points, and the last."""
  every = max(steps // max(points, 1), 1)
  return sorted(set(range(every, steps + 1, every)) | {steps})


def score_config(
    study: ml_collections.ConfigDict, scorer: str
) -> ml_collections.ConfigDict:
  """The config a scorer is built from: the base with its eval fields."""
  config = study.base.copy_and_resolve_references()
  spec = study.scorers[scorer]
  config.eval.features = spec.features
  config.eval.features_path = spec.get('features_path', '')
  config.eval.num_samples = study.num_samples
  return config


def validate(
    study: ml_collections.ConfigDict,
) -> dict[tuple[str, int], ml_collections.ConfigDict]:
  """All run configs, each checked as a run would check it.

  Raises:
    StudyError: naming the arm and the problem.
  """
  from catgan_jax import config_lib  # pylint: disable=g-import-not-at-top

  configs = run_configs(study)
  if not study.get('scorers'):
    raise StudyError('scorers is empty: a study scores its runs')
  for (arm, seed), config in configs.items():
    try:
      config_lib.validate(config)
    except config_lib.ConfigError as e:
      raise StudyError(f'arms.{arm} (seed {seed}): {e}') from None
  for name in study.scorers:
    try:
      config_lib.validate(score_config(study, name))
    except config_lib.ConfigError as e:
      raise StudyError(f'scorers.{name}: {e}') from None
  return configs


# --- Running and scoring ------------------------------------------------------


def _load() -> list[float]:
  return [round(x, 2) for x in os.getloadavg()]


class BudgetClock:
  """A trainer `on_step` hook: stops when the training loop's time is spent.

  The clock starts at the hook's first call (before the first step, after
  start-up and compilation) from the time `earlier` records at the step
  resumed from: {step: training seconds} of earlier calls' checkpoints (the
  nearest recorded step below it when that step is not recorded). Time in
  `paused()` is not counted (scoring). Dispatch runs ahead of the device:
  once the host's clock says the limit is reached, it waits for the step
  and reads the clock again, so the time of a stop is the step's.

  Attributes:
    step: the step of the last call.
    seconds: the training time at `step`.
  """

  def __init__(
      self, limit_s: float, earlier: Mapping[str, float] | None = None
  ):
    """A clock that stops the run at `limit_s` training seconds.

    Args:
      limit_s: the training time at which the hook answers True (it may
        be raised between calls).
      earlier: {str(step): seconds} of earlier training calls.
    """
    self.limit_s = limit_s
    self._earlier = {int(k): v for k, v in (earlier or {}).items()}
    self._t0 = None
    self._offset = 0.0
    self._paused = 0.0
    self.step = None
    self.seconds = 0.0

  def _start(self, step: int) -> None:
    below = [k for k in self._earlier if k <= step]
    if step and step not in self._earlier:
      logging.warning(
          'Step %d has no recorded training time; counting from step %s.',
          step,
          max(below) if below else 0,
      )
    self._offset = self._earlier[max(below)] if below else 0.0
    self._t0 = time.monotonic()

  def _now(self) -> float:
    return self._offset + time.monotonic() - self._t0 - self._paused

  @contextlib.contextmanager
  def paused(self):
    """Time spent inside is not training time."""
    t0 = time.monotonic()
    try:
      yield
    finally:
      self._paused += time.monotonic() - t0

  def __call__(self, step: int, state: Any) -> bool:
    if self._t0 is None:
      self._start(step)
    self.step = step
    self.seconds = self._now()
    if self.seconds >= self.limit_s:
      import jax  # pylint: disable=g-import-not-at-top

      jax.block_until_ready(state)
      self.seconds = self._now()
      return True
    return False


def _read_json(path: str, default: Any) -> Any:
  if not os.path.isfile(path):
    return default
  with open(path) as f:
    return json.load(f)


def _train_for_minutes(
    config: ml_collections.ConfigDict,
    workdir: str,
    budget_s: float,
    points: int,
) -> bool:
  """Trains to each score point's time; False if stopped before the end.

  Each point is a call of the trainer stopped by a `BudgetClock` (its
  checkpoint is the point's); after each, the step and training time are
  written to BUDGET_FILE, which the next call (or a resumed study) counts
  from.
  """
  from catgan_jax import train  # pylint: disable=g-import-not-at-top

  path = os.path.join(workdir, BUDGET_FILE)
  record = _read_json(path, {'at_step': {}, 'points': []})
  for k in range(len(record['points']) + 1, points + 1):
    limit = budget_s * k / points
    last = max(map(int, record['at_step']), default=0)
    if record['at_step'].get(str(last), 0.0) >= limit:
      # The last stop's step (a long one) already ended past this point.
      record['points'].append(last)
      _write_json(path, record)
      continue
    clock = BudgetClock(limit, record['at_step'])
    train.train_and_evaluate(config, workdir, on_step=clock)
    record['at_step'][str(clock.step)] = clock.seconds
    reached = clock.seconds >= clock.limit_s
    if reached:
      record['points'].append(clock.step)
    _write_json(path, record)
    if not reached:  # Stopped by a signal: the next call resumes.
      return False
  return True


def _train(
    config: ml_collections.ConfigDict,
    workdir: str,
    budget_s: float = 0.0,
    points: int = 1,
) -> dict:
  """Trains one run to its end; its wall time, load and final step.

  `budget_s` > 0: for that many seconds of training (`_train_for_minutes`),
  else for config.num_train_steps.
  """
  from catgan_jax import train  # pylint: disable=g-import-not-at-top

  load, t0 = _load(), time.monotonic()
  step = None
  try:
    if budget_s:
      done = _train_for_minutes(config, workdir, budget_s, points)
      status = 'finished' if done else 'stopped'
      record = _read_json(os.path.join(workdir, BUDGET_FILE), {})
      step = max(map(int, record.get('at_step') or {'0': 0}))
    else:
      state = train.train_and_evaluate(config, workdir)
      step = int(np.asarray(state.step.addressable_data(0)))
      status = 'finished' if step == config.num_train_steps else 'stopped'
  except train.DivergenceError as e:
    logging.warning('%s: %s', workdir, e)
    status, step = 'diverged', None
  return {
      'status': status,
      'final_step': step,
      'seconds': time.monotonic() - t0,
      'load_before': load,
      'load_after': _load(),
  }


def _train_in_child(
    config: ml_collections.ConfigDict,
    workdir: str,
    budget_s: float = 0.0,
    points: int = 1,
) -> dict:
  """`_train` in a fresh process (`--parallel`): quiet, own runtime."""
  cli.configure()
  cli.quiet_libraries()
  logging.set_verbosity(logging.WARNING)
  return _train(config, workdir, budget_s, points)


def _add_train_time(workdir: str, trained: dict) -> dict:
  """`trained` with the training time of every call on this run summed.

  A run stopped and resumed trains in several calls; the first call's load
  average is kept.
  """
  path = os.path.join(workdir, TRAIN_TIME_FILE)
  earlier = {}
  if os.path.isfile(path):
    with open(path) as f:
      earlier = json.load(f)
  total = {
      **trained,
      'seconds': earlier.get('seconds', 0.0) + trained['seconds'],
      'load_before': earlier.get('load_before', trained['load_before']),
      'calls': earlier.get('calls', 0) + 1,
  }
  _write_json(path, total)
  return total


def _divergences(workdir: str) -> int:
  from catgan_jax import metrics_log  # pylint: disable=g-import-not-at-top

  return len(metrics_log.read_divergences(workdir))


def _score_run(
    workdir: str,
    steps: Sequence[int],
    scorers: Mapping[str, Any],
) -> dict[str, list[dict]]:
  """Each scorer's scores of the run's checkpoints at `steps`."""
  from catgan_jax import inference  # pylint: disable=g-import-not-at-top

  scores = {name: [] for name in scorers}
  for step in steps:
    _, sample, chosen = inference.load_generator(workdir, step)
    for name, scorer in scorers.items():
      scores[name].append({'step': chosen, **scorer.score(sample)})
  return scores


def _result(
    arm: str,
    seed: int,
    config: ml_collections.ConfigDict,
    workdir: str,
    trained: dict,
    scores: dict,
    times: Mapping[str, Any],
) -> dict:
  """One run's record in study.json.

  `times`: a minutes-budget run's BUDGET_FILE record ({} for a steps
  budget): its points' training times, not the wall time scaled by step.
  """
  finished = trained['status'] == 'finished'
  if times and trained['final_step'] is not None:  # Not diverged.
    seconds = times['at_step'][str(trained['final_step'])]
    steps = trained['final_step']
    for rows in scores.values():
      for row in rows:
        row['seconds'] = times['at_step'][str(row['step'])]
  else:
    steps, seconds = config.num_train_steps, trained['seconds']
    for rows in scores.values():
      for row in rows:
        row['seconds'] = seconds * row['step'] / steps
  return {
      'arm': arm,
      'seed': seed,
      'workdir': run_name(arm, seed),
      'status': trained['status'],
      'steps': trained['final_step'],
      # With a minutes budget, the training loop's time; else the wall
      # time of the training calls.
      'train_seconds': seconds,
      'wall_seconds': trained['seconds'],
      'images_per_s': (
          steps * config.batch_size / seconds if finished and seconds else None
      ),
      'divergences': _divergences(workdir),
      'train_calls': trained['calls'],
      'load_before': trained['load_before'],
      'load_after': trained['load_after'],
      'scores': scores,
      'config': json.loads(config.to_json_best_effort()),
  }


def _write_json(path: str, record: Any) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(_finite(record), f, indent=1, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)


def _finite(record: Any) -> Any:
  # JSON has no NaN: a diverged score is written as the string 'nan'.
  if isinstance(record, float) and not math.isfinite(record):
    return str(record)
  if isinstance(record, dict):
    return {k: _finite(v) for k, v in record.items()}
  if isinstance(record, (list, tuple)):
    return [_finite(v) for v in record]
  return record


def _read_result(workdir: str) -> dict | None:
  path = os.path.join(workdir, RESULT_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


class _Progress:
  """One line for the whole study, every 30 s and at each run's end."""

  def __init__(self, total_runs: int, per_run: float, done: int, minutes: bool):
    # Progress is counted in steps, or by runs with a minutes budget (the
    # training clock is inside the run).
    self._total, self._steps, self._done = total_runs, per_run, done
    self._minutes = minutes
    self._since: dict[str, float] = {}
    self._active: dict[str, str] = {}
    self._t0 = time.monotonic()
    self._finished_now = 0
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()

  def started(self, name: str, workdir: str) -> None:
    self._active[name] = workdir
    self._since[name] = time.monotonic()

  def finished(self, name: str) -> None:
    self._active.pop(name, None)
    self._done += 1
    self._finished_now += 1
    self.show()

  def _loop(self):
    while not self._stop.wait(_PROGRESS_EVERY_S):
      self.show()

  def _step(self, workdir: str) -> int:
    from catgan_jax import metrics_log  # pylint: disable=g-import-not-at-top

    records = metrics_log.read_records(
        os.path.join(workdir, metrics_log.METRICS_FILE)
    )
    return records[-1]['step'] if records else 0

  def show(self) -> None:
    elapsed = time.monotonic() - self._t0
    left_runs = self._total - self._done
    if self._minutes:
      # A run's wall time (start-up, compilation, scoring) is not its
      # training budget: the ETA is from the runs finished so far.
      t = time.monotonic()
      eta = (
          elapsed / self._finished_now * left_runs
          if self._finished_now
          else math.nan
      )
      now = ', '.join(
          f'{n} for {(t - self._since[n]) / 60:.1f} min'
          for n in list(self._active)
      )
    else:
      active = {n: self._step(w) for n, w in list(self._active.items())}
      # In steps; a run's scoring counts as part of its last step.
      done = self._finished_now * self._steps + sum(active.values())
      left = left_runs * self._steps - sum(active.values())
      eta = elapsed / done * left if done else math.nan
      now = ', '.join(
          f'{n} step {s}/{self._steps}' for n, s in active.items() if s
      )
    print(
        f'study: {self._done}/{self._total} runs done, '
        f'{elapsed / 60:.1f} min, ETA '
        f'{eta / 60:.1f} min' + (f'; now {now}' if now else ''),
        flush=True,
    )


def run_study(
    study: ml_collections.ConfigDict,
    workdir: str,
    parallel: int = 1,
    max_runs: int = 0,
) -> dict | None:
  """Runs (or resumes) a study and writes its summary files.

  Args:
    study: the study config (see the module docstring).
    workdir: the study directory (one subdirectory per run).
    parallel: runs trained at once (1 = in this process).
    max_runs: stop after this many new runs (0 = all); the summary is then
      not written, and the next call resumes.

  Returns:
    The study.json record, or None when stopped early (by `max_runs` or a
    signal; the next call resumes).

  Raises:
    StudyError: a bad study config (before anything is written).
  """
  from catgan_jax.evaluation import scorer as scorer_lib  # pylint: disable=g-import-not-at-top

  workdir = os.path.abspath(workdir)
  if parallel < 1:
    raise StudyError(f'--parallel={parallel} must be at least 1')
  configs = validate(study)
  scorers = {
      name: scorer_lib.Scorer(score_config(study, name))
      for name in study.scorers
  }
  todo = [
      key
      for key in configs
      if _read_result(os.path.join(workdir, run_name(*key))) is None
  ]
  if max_runs:
    todo = todo[:max_runs]
  steps, minutes = budget(study)
  budget_s = minutes * 60
  train_args = (budget_s, study.score_points)

  def finish(key, trained) -> bool:
    """Scores and records a trained run; False if it was stopped early."""
    run_dir = os.path.join(workdir, run_name(*key))
    trained = _add_train_time(run_dir, trained)
    if trained['status'] == 'stopped':
      # Stopped by a signal (checkpoint saved): the next call resumes it.
      return False
    times = (
        _read_json(os.path.join(run_dir, BUDGET_FILE), {}) if minutes else {}
    )
    points = (
        sorted(set(times['points']))
        if minutes
        else _score_steps(steps, study.score_points)
    )
    scores = (
        _score_run(run_dir, points, scorers)
        if trained['status'] == 'finished'
        else {}
    )
    _write_json(
        os.path.join(run_dir, RESULT_FILE),
        _result(*key, configs[key], run_dir, trained, scores, times),
    )
    progress.finished(run_name(*key))
    return True

  with _Progress(
      len(configs), steps or minutes, len(configs) - len(todo), bool(minutes)
  ) as progress:
    if parallel == 1:
      for key in todo:
        run_dir = os.path.join(workdir, run_name(*key))
        progress.started(run_name(*key), run_dir)
        verbosity = logging.get_verbosity()
        logging.set_verbosity(logging.WARNING)
        try:
          trained = _train(configs[key], run_dir, *train_args)
        finally:
          logging.set_verbosity(verbosity)
        if not finish(key, trained):
          return None
    else:
      context = multiprocessing.get_context('spawn')
      with concurrent.futures.ProcessPoolExecutor(
          parallel, mp_context=context
      ) as pool:
        futures = {}
        for key in todo:
          run_dir = os.path.join(workdir, run_name(*key))
          progress.started(run_name(*key), run_dir)
          futures[
              pool.submit(_train_in_child, configs[key], run_dir, *train_args)
          ] = key
        stopped = False
        for future in concurrent.futures.as_completed(futures):
          stopped |= not finish(futures[future], future.result())
      if stopped:
        return None
  results = [
      _read_result(os.path.join(workdir, run_name(*key))) for key in configs
  ]
  if any(r is None for r in results):
    return None
  record = summarize(study, results)
  _write_json(os.path.join(workdir, STUDY_JSON), record)
  with open(os.path.join(workdir, STUDY_MD), 'w') as f:
    f.write(format_markdown(record))
  plot(record, os.path.join(workdir, STUDY_PNG))
  return record


# --- Summaries ----------------------------------------------------------------

_SCORES = ('fid', 'kid', 'is_mean', 'precision', 'recall')


def _final(run: Mapping[str, Any], scorer: str) -> dict | None:
  rows = run['scores'].get(scorer) or []
  return rows[-1] if rows else None


def _stats(values: Sequence[float]) -> dict:
  values = [float(v) for v in values if v is not None]
  values = [v for v in values if math.isfinite(v)]
  if not values:
    return {'n': 0}
  return {
      'n': len(values),
      'mean': float(np.mean(values)),
      'std': float(np.std(values, ddof=1)) if len(values) > 1 else None,
      'min': min(values),
      'max': max(values),
  }


def _welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
  """Two-sided Welch's t-test p-value; None when it cannot be computed."""
  import scipy.stats  # pylint: disable=g-import-not-at-top

  if len(a) < 2 or len(b) < 2:
    return None
  if np.std(a) == 0 and np.std(b) == 0:
    return 1.0 if np.mean(a) == np.mean(b) else 0.0
  return float(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue)


def summarize(
    study: ml_collections.ConfigDict, runs: Sequence[Mapping[str, Any]]
) -> dict:
  """study.json: the study's settings, every run, and per-arm statistics."""
  scorers = list(study.scorers)
  arms = {}
  for arm in study.arms:
    mine = [r for r in runs if r['arm'] == arm]
    finals = {s: [_final(r, s) for r in mine] for s in scorers}
    arms[arm] = {
        'overrides': _flatten(study.arms[arm].to_dict()),
        'runs': len(mine),
        'diverged_runs': sum(r['status'] != 'finished' for r in mine),
        'divergences': sum(r['divergences'] for r in mine),
        'images_per_s': _stats([r['images_per_s'] for r in mine]),
        'scores': {
            s: {
                name: _stats([f[name] for f in finals[s] if f and name in f])
                for name in _SCORES
            }
            for s in scorers
        },
    }
  primary = scorers[0]

  def fids(arm):
    return [
        f['fid']
        for f in (_final(r, primary) for r in runs if r['arm'] == arm)
        if f and math.isfinite(f['fid'])
    ]

  ranked = sorted(
      (a for a in arms if fids(a)), key=lambda a: float(np.mean(fids(a)))
  )
  for rank, arm in enumerate(ranked, start=1):
    p = _welch_p(fids(arm), fids(ranked[0])) if rank > 1 else None
    arms[arm]['rank'] = rank
    arms[arm]['p_vs_best'] = p
    arms[arm]['like_best'] = rank == 1 or p is None or p >= P_LEVEL
  steps, minutes = budget(study)
  return {
      'seeds': list(study.seeds),
      'num_train_steps': steps,
      'budget_minutes': minutes,
      'scorers': {
          s: json.loads(study.scorers[s].to_json()) for s in study.scorers
      },
      'num_samples': study.num_samples,
      'ranked_by': f'{primary} FID (mean over seeds)',
      'arms': arms,
      'runs': list(runs),
  }


def _cell(stats: Mapping[str, Any], digits: int) -> str:
  if not stats.get('n'):
    return '-'
  std = stats['std']
  spread = f' ± {std:.{digits}f}' if std is not None else ''
  return f'{stats["mean"]:.{digits}f}{spread}'


def format_markdown(record: Mapping[str, Any]) -> str:
  """study.md: a table per scorer, arms by rank."""
  arms = record['arms']
  order = sorted(arms, key=lambda a: arms[a].get('rank', math.inf))
  minutes = record.get('budget_minutes')
  each = (
      f'{minutes:g} training minutes'
      if minutes
      else f'{record["num_train_steps"]} steps'
  )
  lines = [
      f'# Study: {len(arms)} arms x {len(record["seeds"])} seeds, '
      f'{each} each',
      '',
      f'Ranked by {record["ranked_by"]}; mean ± std over seeds (ddof 1). '
      f'"≈ best": Welch\'s t-test against the best arm gives p >= {P_LEVEL}'
      ' (the seed spread does not separate them).',
  ]
  for scorer in record['scorers']:
    lines += [
        '',
        f'## {scorer}',
        '',
        '| rank | arm | FID | FID min | FID max | KID | IS | precision '
        '| recall | ≈ best (p) | img/s | diverged runs / rollbacks |',
        '|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
    ]
    for arm in order:
      a = arms[arm]
      s = a['scores'][scorer]
      fid = s['fid']
      p = a.get('p_vs_best')
      like = (
          ('yes' if a.get('like_best') else 'no')
          + (f' ({p:.3f})' if p is not None else '')
          if 'rank' in a
          else '-'
      )
      lines.append(
          f'| {a.get("rank", "-")} | {arm} | {_cell(fid, 1)} | '
          f'{fid.get("min", math.nan):.1f} | {fid.get("max", math.nan):.1f} '
          f'| {_cell(s["kid"], 4)} | {_cell(s["is_mean"], 2)} | '
          f'{_cell(s["precision"], 3)} | {_cell(s["recall"], 3)} | {like} | '
          f'{_cell(a["images_per_s"], 1)} | '
          f'{a["diverged_runs"]} / {a["divergences"]} |'
      )
  lines += ['', '## Overrides of each arm', '']
  for arm in order:
    overrides = ', '.join(
        f'{k}={v!r}' for k, v in arms[arm]['overrides'].items()
    )
    lines.append(f'- {arm}: {overrides or "(the base config)"}')
  return '\n'.join(lines) + '\n'


def plot(record: Mapping[str, Any], path: str) -> None:
  """study.png: FID per arm (one dot per seed); FID against training time."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  scorer = next(iter(record['scorers']))
  arms = record['arms']
  order = sorted(arms, key=lambda a: arms[a].get('rank', math.inf))
  colors = plt.get_cmap('tab10')
  fig, (strip, curves) = plt.subplots(1, 2, figsize=(13, 4.8))
  for i, arm in enumerate(order):
    color = colors(i % 10)
    runs = [r for r in record['runs'] if r['arm'] == arm]
    finals = [_final(r, scorer) for r in runs]
    fids = [f['fid'] for f in finals if f and _is_number(f['fid'])]
    jitter = np.linspace(-0.12, 0.12, len(fids)) if len(fids) > 1 else [0.0]
    strip.scatter(
        [i + j for j in jitter][: len(fids)], fids, color=color, zorder=3
    )
    if fids:
      strip.hlines(np.mean(fids), i - 0.25, i + 0.25, color=color)
    for k, r in enumerate(runs):
      rows = [
          row for row in r['scores'].get(scorer, []) if _is_number(row['fid'])
      ]
      curves.plot(
          [row['seconds'] / 60 for row in rows],
          [row['fid'] for row in rows],
          marker='o',
          markersize=3,
          color=color,
          label=arm if k == 0 else None,
      )
  strip.set_xticks(range(len(order)))
  strip.set_xticklabels(order, rotation=30, ha='right')
  strip.set_ylabel(f'FID ({scorer})')
  strip.set_title('Final FID per arm (dot: seed; bar: mean)')
  strip.grid(axis='y', alpha=0.3)
  curves.set_xlabel('training time (min)')
  curves.set_ylabel(f'FID ({scorer})')
  curves.set_title('FID against training time (one line per seed)')
  curves.grid(alpha=0.3)
  curves.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value)


# --- The program --------------------------------------------------------------


def _define_flags() -> None:
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file(
      'config', None, 'Study config file (see configs/study/).'
  )
  flags.DEFINE_string('workdir', None, 'Study directory.')
  flags.DEFINE_integer('parallel', 1, 'Runs trained at once.')
  flags.DEFINE_integer(
      'max_runs', 0, 'Train at most this many new runs now (0 = all).'
  )
  flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses extra arguments.
  f = flags.FLAGS
  if not f.workdir.strip():
    raise cli.UserError("--workdir='' must name the study directory")
  record = run_study(f.config, f.workdir, f.parallel, f.max_runs)
  if record is None:
    print('study: stopped before its last run; rerun the command to resume')
  else:
    print(f'study: wrote {os.path.join(f.workdir, STUDY_MD)}')


if __name__ == '__main__':
  cli.configure()
  _define_flags()
  cli.run(main)
