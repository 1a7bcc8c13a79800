"""The study program: a 2-arm x 2-seed study of 2-step runs, a budget in
minutes, and bad configs.

Most of the time is scoring (a 1280 x 1280 matrix square root per FID), so
each run is scored once, with 16 samples against 32 reference images.
"""

import glob
import json
import os
import subprocess
import sys
import time

import ml_collections
import pytest

import helpers
from catgan_jax import study as study_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_mobilenet = pytest.mark.skipif(
    not helpers.HAS_MOBILENET, reason='no MobileNetV2 weights here'
)


def _study(cache_dir: str) -> ml_collections.ConfigDict:
  study = ml_collections.ConfigDict()
  base = helpers.config_with()
  base.eval.features = 'mobilenet_v2'
  base.eval.num_reference = 32
  base.eval.batch_size = 8
  base.eval.kid_subsets = 2
  base.eval.kid_subset_size = 8
  base.eval.cache_dir = cache_dir
  study.base = base
  study.arms = {
      'nsgan': {},
      'hinge': {'loss': {'name': 'hinge'}, 'optim': {'d_lr': 1e-4}},
  }
  study.seeds = (0, 1)
  study.num_train_steps = 2
  study.budget_minutes = 0.0
  study.score_points = 1
  study.num_samples = 16
  study.scorers = {
      'mobilenet_v2': {
          'features': 'mobilenet_v2',
          'features_path': helpers.MOBILENET,
      }
  }
  return study


@pytest.fixture(scope='module')
def resumed(tmp_path_factory):
  """The study stopped after its first run, then resumed 2 runs at a time."""
  cache = str(tmp_path_factory.mktemp('cache'))
  workdir = str(tmp_path_factory.mktemp('resumed'))
  first = study_lib.run_study(_study(cache), workdir, max_runs=1)
  done = sorted(
      os.path.relpath(os.path.dirname(p), workdir)
      for p in glob.glob(os.path.join(workdir, '*', '*', study_lib.RESULT_FILE))
  )
  with open(os.path.join(workdir, done[0], study_lib.RESULT_FILE)) as f:
    first_result = f.read()
  record = study_lib.run_study(_study(cache), workdir, parallel=2)
  return cache, workdir, (first, done, first_result), record


@needs_mobilenet
def test_study_stops_and_resumes(resumed):
  _, workdir, (first, done, first_result), record = resumed
  assert first is None and done == [os.path.join('hinge', 'seed0')]
  # The finished run was not run again.
  with open(os.path.join(workdir, done[0], study_lib.RESULT_FILE)) as f:
    assert f.read() == first_result
  runs = {(r['arm'], r['seed']): r for r in record['runs']}
  assert sorted(runs) == [
      ('hinge', 0),
      ('hinge', 1),
      ('nsgan', 0),
      ('nsgan', 1),
  ]
  for (arm, seed), run in runs.items():
    assert run['status'] == 'finished' and run['steps'] == 2
    assert run['config']['seed'] == seed
    assert run['config']['loss']['name'] == arm
    rows = run['scores']['mobilenet_v2']
    assert [r['step'] for r in rows] == [2]
    for row in rows:
      assert row['fid'] > 0 and 0 <= row['precision'] <= 1
      assert 0 <= row['recall'] <= 1 and row['is_mean'] >= 1
    assert run['images_per_s'] > 0 and run['divergences'] == 0
  # Different seeds train different generators; the arms' overrides apply.
  assert (
      runs[('nsgan', 0)]['scores']['mobilenet_v2'][-1]['fid']
      != runs[('nsgan', 1)]['scores']['mobilenet_v2'][-1]['fid']
  )
  assert runs[('hinge', 1)]['config']['optim']['d_lr'] == 1e-4
  arms = record['arms']
  assert sorted(a['rank'] for a in arms.values()) == [1, 2]
  fid = arms['nsgan']['scores']['mobilenet_v2']['fid']
  assert fid['n'] == 2 and fid['min'] <= fid['mean'] <= fid['max']
  assert fid['std'] > 0
  text = open(os.path.join(workdir, study_lib.STUDY_MD)).read()
  assert '| 1 |' in text and 'hinge' in text and 'nsgan' in text
  assert os.path.getsize(os.path.join(workdir, study_lib.STUDY_PNG)) > 10_000


@needs_mobilenet
def test_rerun_of_a_finished_study_changes_nothing(resumed):
  cache, workdir, _, _ = resumed
  path = os.path.join(workdir, study_lib.STUDY_JSON)
  before = open(path).read()
  config = os.path.join(workdir, 'nsgan', 'seed0', 'config.json')
  stamp = os.path.getmtime(config)
  assert study_lib.run_study(_study(cache), workdir) is not None
  assert open(path).read() == before
  assert stamp == os.path.getmtime(config)


@pytest.mark.parametrize(
    'change, message',
    [
        ({'arms': {'nsgan': {'loss': {'nam': 'hinge'}}}}, 'loss.nam'),
        ({'arms': {'nsgan': {'loss': {'name': 'nope'}}}}, "'nope' is unknown"),
        ({'seeds': ()}, 'seeds=()'),
        ({'arms': {'nsgan': {'data': {'image_size': 32}}}}, 'shared'),
        ({'budget_minutes': 2.0}, 'num_train_steps=2 and budget_minutes=2.0'),
        (
            {'num_train_steps': 0, 'budget_minutes': -1.0},
            'budget_minutes=-1.0 must be a positive number',
        ),
        (
            {'num_train_steps': 0, 'budget_minutes': float('nan')},
            'budget_minutes=nan must be',
        ),
        ({'num_train_steps': 0}, 'num_train_steps=0 and budget_minutes=0'),
        (
            {
                'num_train_steps': 0,
                'budget_minutes': 1.0,
                'arms': {'nsgan': {'loss': {'instance_noise': 0.1}}},
            },
            'arms.nsgan: loss.instance_noise anneals',
        ),
    ],
)
def test_bad_study_config_is_refused_before_any_run(change, message, tmp_path):
  study = _study(str(tmp_path / 'cache'))
  study.update(change)
  workdir = tmp_path / 'study'
  with pytest.raises(study_lib.StudyError, match=message):
    study_lib.validate(study)
  assert not workdir.exists()


def test_command_line_bad_config_is_one_line_and_exit_2(tmp_path):
  config = tmp_path / 'bad_study.py'
  config.write_text(
      'from configs.study import losses32\n'
      'def get_config():\n'
      '  study = losses32.get_config()\n'
      "  study.arms.hinge.loss.name = 'hingee'\n"
      '  return study\n'
  )
  workdir = tmp_path / 'study'
  result = subprocess.run(
      [
          sys.executable,
          '-m',
          'catgan_jax.study',
          f'--config={config}',
          f'--workdir={workdir}',
          '--config.base.data.dir=/nonexistent',
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and 'arms.hinge' in lines[0]
  assert "'hingee'" in lines[0]
  assert not workdir.exists()


# --- A budget in minutes ----------------------------------------------------


class _State:
  """What the clock waits for: nothing to compute."""


def test_budget_clock_counts_from_the_resumed_steps_time():
  earlier = {'0': 0.0, '5': 2.5}
  clock = study_lib.BudgetClock(2.7, earlier)
  assert not clock(5, _State())  # Before the first step: from step 5's time.
  assert 2.5 <= clock.seconds < 2.6
  with clock.paused():  # Scoring is not training.
    time.sleep(0.3)
  assert not clock(6, _State()) and clock.seconds < 2.6
  time.sleep(0.25)
  assert clock(7, _State()) and clock.seconds >= 2.7 and clock.step == 7
  # A checkpoint of a step with no recorded time (a kill just after it):
  # from the nearest recorded step before it.
  clock = study_lib.BudgetClock(10.0, earlier)
  clock(7, _State())
  assert 2.5 <= clock.seconds < 2.6


def _budget_study(cache_dir: str, minutes: float, points: int):
  study = _study(cache_dir)
  study.arms = {'nsgan': {}}
  study.seeds = (0,)
  study.num_train_steps = 0
  study.budget_minutes = minutes
  study.score_points = points
  # Steps, not pictures and logs, fill the budget.
  study.base.log_every_steps = 1000
  study.base.sample_every_steps = 1000
  return study


@needs_mobilenet
def test_a_minutes_budget_trains_for_that_time(resumed, tmp_path):
  cache = resumed[0]  # The reference features are cached there already.
  minutes = 0.03
  record = study_lib.run_study(
      _budget_study(cache, minutes, 1), str(tmp_path / 'study')
  )
  assert record['budget_minutes'] == minutes
  assert record['num_train_steps'] == 0
  (run,) = record['runs']
  assert run['status'] == 'finished' and run['steps'] > 2
  # Training time: the loop's, at least the budget, and less than the
  # wall time, which holds start-up and compilation.
  assert minutes * 60 <= run['train_seconds'] < minutes * 60 + 2
  assert run['train_seconds'] < run['wall_seconds']
  (row,) = run['scores']['mobilenet_v2']
  assert row['step'] == run['steps'] and row['fid'] > 0
  assert row['seconds'] == run['train_seconds']
  assert run['images_per_s'] > 0
  md = open(tmp_path / 'study' / study_lib.STUDY_MD).read()
  assert '0.03 training minutes each' in md


def test_a_resumed_budget_run_reaches_the_same_budget(tmp_path):
  study = _budget_study(str(tmp_path / 'cache'), 0.02, 2)
  # Two update phases (D only; D and G): both compiled before the clock
  # starts.
  study.arms = {'nsgan': {'train': {'d_steps_per_g_step': 2}}}
  ((_, config),) = study_lib.run_configs(study).items()
  budget_s = 0.02 * 60
  workdir = str(tmp_path / 'run')
  # A run killed after its first point (of 2) left what a 1-point run of
  # half the budget leaves: that point's checkpoint and training time.
  assert study_lib._train(config, workdir, budget_s / 2, 1)['status'] == (
      'finished'
  )
  path = os.path.join(workdir, study_lib.BUDGET_FILE)
  record = json.load(open(path))
  (first,) = record['points']
  assert budget_s / 2 <= record['at_step'][str(first)] < budget_s / 2 + 1
  trained = study_lib._train(config, workdir, budget_s, 2)
  assert trained['status'] == 'finished'
  record = json.load(open(path))
  assert record['points'][0] == first
  last = record['points'][1]
  assert last > first and trained['final_step'] == last
  # It trained the rest of the budget, not a whole budget more.
  assert budget_s <= record['at_step'][str(last)] < budget_s + 1
