"""The study program: a 2-arm x 2-seed study of 2-step runs, and bad configs."""

import glob
import json
import os
import subprocess
import sys

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
  study.score_points = 2
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
    assert [r['step'] for r in rows] == [1, 2]
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
