"""Every command answers a user mistake with one line and exit 2, losing nothing.

Each case runs the program as a user does (a subprocess) and checks the exit
code, the one line (a regex), that no traceback or help text was printed,
and that the files of the workdir (or of the temp dir) are exactly as before.
The checkpoint and metrics cases run the trainer in process.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image
import pytest

import helpers
from catgan_jax import checkpoint as checkpoint_lib
from catgan_jax import config_lib
from catgan_jax import evaluate
from catgan_jax import generate
from catgan_jax import inference
from catgan_jax import metrics_log
from catgan_jax import train
from catgan_jax import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_CONFIG = os.path.join(ROOT, 'configs', 'test.py')


def _config(**overrides):
  return helpers.config_with(**overrides)


def _tree(path) -> dict[str, tuple[int, float]]:
  """Every file under `path` with its size and modification time."""
  files = {}
  for root, _, names in os.walk(path):
    for name in names:
      full = os.path.join(root, name)
      stat = os.stat(full)
      files[os.path.relpath(full, path)] = (stat.st_size, stat.st_mtime_ns)
  return files


def _run(args, cwd):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  return subprocess.run(
      [sys.executable, *args],
      cwd=cwd,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
  )


def _assert_one_line_error(proc, pattern):
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if ': error: ' in line]
  assert len(errors) == 1, proc.stderr[-3000:]
  assert re.search(pattern, errors[0]), errors[0]
  # No help text: absl prints the flags' help with "--helpfull".
  assert 'helpfull' not in proc.stderr and 'USAGE' not in proc.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A finished 6-step run of configs/test.py: checkpoints 2, 4 and 6."""
  workdir = str(tmp_path_factory.mktemp('trained') / 'run')
  train.train_and_evaluate(_config(num_train_steps=6), workdir)
  return workdir


def _copy(run, tmp_path, name='run'):
  dest = str(tmp_path / name)
  shutil.copytree(run, dest)
  return dest


def _broken_folder(tmp_path):
  folder = tmp_path / 'images'
  folder.mkdir()
  (folder / 'broken.jpg').write_bytes(b'not a jpeg')
  return str(folder)


_MAIN_CASES = {
    'unknown field': (['--config.nope=1'], r"unknown config field 'nope'"),
    'missing config file': (
        ['--config=/nonexistent/absent.py'],
        r'absent\.py.*cannot load the config file',
    ),
    'bad value': (['--config.batch_size=abc'], r'batch_size=abc'),
    'no workdir': ([], r'--workdir'),
    'empty workdir': (['--workdir='], r"--workdir='' must name"),
    'extra argument': (['stray'], r'unexpected arguments: stray'),
    'unknown loss': (['--config.loss.name=nope'], r"loss\.name='nope'"),
    'dcgan field for r3gan': (
        ['--config.model.name=r3gan', '--config.model.norm=none'],
        r"model\.norm='none' is only used by model\.name 'dcgan'",
    ),
    'config file returns no config': (
        [
            f'--config={os.path.join(ROOT, "tests", "fixtures", "not_a_config.py")}'
        ],
        r'not_a_config\.py: get_config\(\) returned int, not an '
        r'ml_collections\.ConfigDict',
    ),
    'config file without get_config': (
        [
            f'--config={os.path.join(ROOT, "tests", "fixtures", "no_get_config.py")}'
        ],
        r'no_get_config\.py defines no get_config\(\)',
    ),
    'unknown config argument': (
        [f'--config={os.path.join(ROOT, "configs", "relativistic.py")}:wgan'],
        r'relativistic\.py:wgan: expected loss\[,image_size\] with loss in '
        r'rsgan',
    ),
}


@pytest.mark.parametrize('case', sorted(_MAIN_CASES))
def test_main_flag_mistakes(case, tmp_path):
  extra, pattern = _MAIN_CASES[case]
  args = [
      os.path.join(ROOT, 'main.py'),
      f'--config={TEST_CONFIG}',
      f'--workdir={tmp_path}/w',
  ]
  if case in ('no workdir', 'empty workdir'):
    args = args[:2]
  elif extra[0].startswith('--config='):
    args[1] = extra[0]
    extra = []
  before = _tree(ROOT)
  _assert_one_line_error(_run(args + extra, tmp_path), pattern)
  assert not os.listdir(tmp_path)
  assert _tree(ROOT) == before


def test_no_usable_image_stops_before_writing(tmp_path):
  folder = _broken_folder(tmp_path)
  proc = _run(
      [
          'main.py',
          f'--config={TEST_CONFIG}',
          f'--workdir={tmp_path}/w',
          '--config.data.source=folder',
          f'--config.data.dir={folder}',
      ],
      ROOT,
  )
  _assert_one_line_error(proc, r'no usable image.*1 found')
  assert not (tmp_path / 'w').exists()


@pytest.mark.skipif(not helpers.HAS_MOBILENET, reason='no MobileNetV2 here')
def test_unwritable_reference_cache_stops_before_writing(tmp_path):
  blocker = tmp_path / 'cache_is_a_file'
  blocker.write_text('not a folder')
  proc = _run(
      [
          'main.py',
          f'--config={TEST_CONFIG}',
          f'--workdir={tmp_path}/w',
          '--config.eval.every_steps=2',
          '--config.eval.features=mobilenet_v2',
          f'--config.eval.features_path={helpers.MOBILENET}',
          f'--config.eval.cache_dir={blocker}/reference',
      ],
      ROOT,
  )
  _assert_one_line_error(
      proc, r"eval\.cache_dir='.*/reference' cannot be created: .* is a file"
  )
  assert not (tmp_path / 'w').exists()
  assert blocker.read_text() == 'not a folder'


def test_garbage_feature_weights_stop_before_writing(tmp_path):
  garbage = tmp_path / 'weights.tflite'
  garbage.write_bytes(b'\x00\x01garbage' * 10)
  proc = _run(
      [
          'main.py',
          f'--config={TEST_CONFIG}',
          f'--workdir={tmp_path}/w',
          '--config.eval.every_steps=0',
          '--config.eval.features=mobilenet_v2',
          f'--config.eval.features_path={garbage}',
      ],
      ROOT,
  )
  _assert_one_line_error(proc, r'weights\.tflite.*not a mobilenet_v2 weights')
  assert not (tmp_path / 'w').exists()


def test_truncated_config_json_is_one_line(trained, tmp_path):
  run = _copy(trained, tmp_path)
  path = os.path.join(run, config_lib.CONFIG_FILE)
  with open(path) as f:
    text = f.read()
  with open(path, 'w') as f:
    f.write(text[: len(text) // 2])
  before = _tree(run)
  proc = _run(
      [
          'main.py',
          f'--config={TEST_CONFIG}',
          f'--workdir={run}',
          '--config.num_train_steps=8',
      ],
      ROOT,
  )
  _assert_one_line_error(proc, r'config\.json cannot be read')
  assert _tree(run) == before


def test_checkpoint_of_another_shape_is_a_config_error(trained, tmp_path):
  # allow_config_change lets a config change through; a checkpoint that
  # cannot hold the new widths must not be thrown away for it.
  run = _copy(trained, tmp_path)
  before = _tree(run)
  proc = _run(
      [
          'main.py',
          f'--config={TEST_CONFIG}',
          f'--workdir={run}',
          '--config.num_train_steps=8',
          '--config.allow_config_change=True',
          '--config.model.g_width=16',
      ],
      ROOT,
  )
  _assert_one_line_error(
      proc,
      r'checkpoint 6 .* does not fit this config: .*shape.*'
      r'model\.g_width: 8 -> 16.*--start_over',
  )
  assert _tree(run) == before


def test_start_over_moves_the_old_run_aside(trained, tmp_path):
  run = _copy(trained, tmp_path)
  before = _tree(run)
  train.train_and_evaluate(
      _config(**{'model.g_width': 16}), run, start_over=True
  )
  moved = _tree(os.path.join(run, train.PREVIOUS_DIR, '1'))
  assert {k: v[0] for k, v in moved.items()} == {
      k: v[0] for k, v in before.items()
  }
  records = metrics_log.MetricsLog(run).read()
  assert [r['step'] for r in records] == [1, 2, 3, 4]
  assert config_lib.load_config(run).model.g_width == 16


def _damage(run, step):
  for root, _, files in os.walk(os.path.join(run, 'checkpoints', str(step))):
    for name in files:
      open(os.path.join(root, name), 'w').close()


def test_damaged_checkpoint_moved_aside_without_collision(trained, tmp_path):
  run = _copy(trained, tmp_path)
  # An earlier recovery left checkpoints_corrupt/6 behind.
  os.makedirs(os.path.join(run, checkpoint_lib.CORRUPT_DIR, '6', 'x'))
  _damage(run, 6)
  state = train.train_and_evaluate(_config(num_train_steps=6), run)
  corrupt = sorted(os.listdir(os.path.join(run, checkpoint_lib.CORRUPT_DIR)))
  assert corrupt == ['6', '6.1']
  # It resumed from 4 and trained 5 and 6 again.
  assert int(state.step) == 6
  records = metrics_log.MetricsLog(run).read()
  assert [r['step'] for r in records] == [1, 2, 3, 4, 5, 6]


def test_every_checkpoint_damaged_stops_and_stays_stopped(trained, tmp_path):
  run = _copy(trained, tmp_path)
  for step in (2, 4, 6):
    _damage(run, step)
  with pytest.raises(
      config_lib.ConfigError, match='no restorable checkpoint.*--start_over'
  ):
    train.train_and_evaluate(_config(num_train_steps=8), run)
  before = _tree(run)
  # A rerun must not take the now empty checkpoints/ for a new run.
  with pytest.raises(config_lib.ConfigError, match='no restorable checkpoint'):
    train.train_and_evaluate(_config(num_train_steps=8), run)
  assert _tree(run) == before
  assert len(os.listdir(os.path.join(run, checkpoint_lib.CORRUPT_DIR))) == 3


def test_damaged_metrics_line_keeps_every_valid_record(tmp_path):
  log = metrics_log.MetricsLog(str(tmp_path))
  for step in (1, 2, 3):
    log.write(step, {'d_loss': float(step)})
  with open(log.path, 'a') as f:
    f.write('{"step": 4, "d_lo\n')  # A line cut short.
  for step in (5, 6, 7):
    log.write(step, {'d_loss': float(step)})
  assert [r['step'] for r in log.read()] == [1, 2, 3, 5, 6, 7]
  log.truncate(6)  # A resume from step 6.
  assert [r['step'] for r in log.read()] == [1, 2, 3, 5, 6]
  with open(log.path + metrics_log.DAMAGED_SUFFIX) as f:
    assert f.read() == '{"step": 4, "d_lo\n'
  # Nothing to drop: the file is left alone.
  mtime = os.stat(log.path).st_mtime_ns
  log.truncate(6)
  assert os.stat(log.path).st_mtime_ns == mtime


def test_resource_error_is_one_line_and_keeps_checkpoints(
    trained, tmp_path, monkeypatch
):
  run = _copy(trained, tmp_path)
  ckpt = checkpoint_lib.Checkpointer(run, keep=3)

  def disk_full(*args, **kwargs):
    del args, kwargs
    raise OSError(28, 'No space left on device', '/disk/full')

  # Orbax raises the OSError of the failed write (or wraps it).
  monkeypatch.setattr(ckpt._mgr, 'save', disk_full)  # pylint: disable=protected-access
  with pytest.raises(
      checkpoint_lib.cli.ResourceError,
      match=r'cannot write checkpoint 8 .*No space left on '
      r'device \(/disk/full\).*intact',
  ):
    ckpt.save(8, {'x': np.zeros(2)})
  assert ckpt.all_steps() == [2, 4, 6]


def _generate(args, cwd):
  return _run(['-m', 'catgan_jax.generate', *args], cwd)


def test_generate_mistakes_write_nothing(trained, tmp_path):
  run = _copy(trained, tmp_path)
  existing = tmp_path / 'file.png'
  existing.write_bytes(b'x')
  before = _tree(tmp_path)
  cases = [
      ([f'--workdir={run}', f'--out={existing}'], r'is a file, not a folder'),
      (
          [f'--workdir={run}', f'--out={tmp_path}/o', '--step=abc'],
          r"--step='abc'",
      ),
      ([f'--workdir={run}', f'--out={tmp_path}/o', '--num=0'], r'--num=0'),
      (
          [f'--workdir={run}', f'--out={tmp_path}/o', '--step=5'],
          r'no checkpoint step=.5.*available: \[2, 4, 6\]',
      ),
      (
          [f'--workdir={run}', f'--out={tmp_path}/o', '--step=best'],
          r"no checkpoint step='best'",
      ),
  ]
  for args, pattern in cases:
    _assert_one_line_error(_generate(args, ROOT), pattern)
  assert _tree(tmp_path) == before


def test_generate_on_a_run_without_checkpoints(tmp_path):
  run = tmp_path / 'run'
  run.mkdir()
  config_lib.save_config(_config(), str(run))
  before = _tree(tmp_path)
  proc = _generate([f'--workdir={run}', f'--out={tmp_path}/o'], ROOT)
  _assert_one_line_error(proc, r'no checkpoint.*available: none')
  assert _tree(tmp_path) == before
  assert sorted(os.listdir(run)) == [config_lib.CONFIG_FILE]


@pytest.mark.parametrize(
    'program,pattern',
    [
        ('evaluate', r'config\.json is missing'),
        ('plots', r'no metrics\.jsonl'),
    ],
)
def test_evaluate_and_plots_on_an_empty_folder(program, pattern, tmp_path):
  proc = _run(['-m', f'catgan_jax.{program}', f'--workdir={tmp_path}'], ROOT)
  _assert_one_line_error(proc, pattern)
  assert not os.listdir(tmp_path)


def test_prepare_cat_with_only_malformed_landmarks_names_a_file(tmp_path):
  photos = tmp_path / 'CAT_00'
  photos.mkdir()
  Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photos / 'a.jpg')
  (photos / 'a.jpg.cat').write_text('9 1 2 oops\n')
  proc = _run(
      [
          '-m',
          'catgan_jax.data.prepare_cat',
          str(tmp_path),
          str(tmp_path / 'out'),
      ],
      ROOT,
  )
  _assert_one_line_error(proc, r'a\.jpg\.cat')
  assert not (tmp_path / 'out').exists()


def test_scan_of_a_missing_folder(tmp_path):
  proc = _run(['-m', 'catgan_jax.data.scan', str(tmp_path / 'absent')], ROOT)
  _assert_one_line_error(proc, r'absent.*does not exist')


def test_evaluate_takes_the_feature_network_as_flags(trained, tmp_path):
  run = _copy(trained, tmp_path)
  garbage = tmp_path / 'w.tflite'
  garbage.write_bytes(b'junk' * 8)
  before = _tree(run)
  proc = _run(
      [
          '-m',
          'catgan_jax.evaluate',
          f'--workdir={run}',
          '--features=mobilenet_v2',
          f'--features_path={garbage}',
      ],
      ROOT,
  )
  _assert_one_line_error(proc, r'w\.tflite.*not a mobilenet_v2 weights')
  assert _tree(run) == before
  assert json.loads(open(os.path.join(run, 'config.json')).read())


# --- One writer per workdir ---------------------------------------------


def _contents(path) -> dict[str, str]:
  """Every file (with its bytes' hash) and folder under `path`."""
  found = {}
  for root, dirs, names in os.walk(path):
    for name in dirs:
      found[os.path.relpath(os.path.join(root, name), path)] = 'dir'
    for name in names:
      full = os.path.join(root, name)
      with open(full, 'rb') as f:
        found[os.path.relpath(full, path)] = hashlib.sha256(
            f.read()
        ).hexdigest()
  return found


def _hold(workdir):
  """A process holding `workdir` as a trainer does."""
  proc = subprocess.Popen(
      [sys.executable, os.path.join('tests', 'fixtures', 'hold_workdir.py')]
      + [workdir],
      cwd=ROOT,
      stdout=subprocess.PIPE,
      text=True,
  )
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_a_second_writer_is_refused_and_a_killed_holder_leaves_no_lock(
    trained, tmp_path
):
  run = _copy(trained, tmp_path)
  before = _contents(run)
  holder = _hold(run)
  try:
    held = (
        rf'in use by .*\(PID {holder.pid} on {re.escape(socket.gethostname())}'
    )
    for start_over in (False, True):
      with pytest.raises(workdir_lib.Busy, match=held):
        train.train_and_evaluate(_config(num_train_steps=8), run, start_over)
    with pytest.raises(workdir_lib.Busy, match=held):
      generate.generate(run, os.path.join(run, 'generated'), num=1)
    # A reader keeps working.
    out = tmp_path / 'out'
    assert len(generate.generate(run, str(out), num=2)) == 2
    proc = _run(
        ['main.py', f'--config={TEST_CONFIG}', f'--workdir={run}'], ROOT
    )
    _assert_one_line_error(proc, held)
  finally:
    holder.kill()
    holder.wait()
  assert holder.returncode == -signal.SIGKILL
  with workdir_lib.claim(run):  # The kernel dropped the lock.
    pass
  assert _contents(run) == before


def _file_instead(path):
  if os.path.isdir(path):
    shutil.rmtree(path)
  with open(path, 'w') as f:
    f.write('a file')


def _folder_instead(path):
  os.remove(path)
  os.mkdir(path)


def _chattr(flag, path):
  try:
    subprocess.run(['chattr', flag, path], check=True, capture_output=True)
  except (OSError, subprocess.CalledProcessError):
    pytest.skip('chattr is not available here (root on ext4/tmpfs)')


# name: (how the workdir is spoilt, train_and_evaluate's workdir (relative
# to the run), start_over, the one line). Each is refused before any work,
# and every file of the earlier run stays byte for byte as it was.
_UNWRITABLE = {
    'checkpoints is a file': (
        lambda run: _file_instead(os.path.join(run, 'checkpoints')),
        '',
        False,
        r'/checkpoints is a file, not a folder',
    ),
    'checkpoints deleted, metrics kept': (
        lambda run: shutil.rmtree(os.path.join(run, 'checkpoints')),
        '',
        False,
        r'metrics up to step 6\) but no checkpoint .*--start_over',
    ),
    'plots is a file': (
        lambda run: _file_instead(os.path.join(run, 'plots')),
        '',
        False,
        r'/plots is a file, not a folder',
    ),
    'samples is a file': (
        lambda run: _file_instead(os.path.join(run, 'samples')),
        '',
        False,
        r'/samples is a file, not a folder',
    ),
    'previous is a file, --start_over': (
        lambda run: _file_instead(os.path.join(run, 'previous')),
        '',
        True,
        r'/previous is a file, not a folder',
    ),
    'metrics.jsonl is a folder': (
        lambda run: _folder_instead(os.path.join(run, 'metrics.jsonl')),
        '',
        False,
        r'/metrics\.jsonl is a folder, not a file',
    ),
    'metrics.jsonl immutable': (
        lambda run: _chattr('+i', os.path.join(run, 'metrics.jsonl')),
        '',
        False,
        r'cannot write .*/metrics\.jsonl: Operation not permitted',
    ),
    'checkpoints immutable': (
        lambda run: _chattr('+i', os.path.join(run, 'checkpoints')),
        '',
        False,
        r'cannot write .*/checkpoints: Operation not permitted',
    ),
    'workdir is a file': (
        lambda run: None,
        'config.json',
        False,
        r"workdir='.*/config\.json' is a file, not a folder",
    ),
    'workdir under /sys': (
        lambda run: None,
        '/sys/catgan_jax_test',
        False,
        r"cannot write workdir='/sys/catgan_jax_test'",
    ),
    'config.json deleted': (
        lambda run: os.remove(os.path.join(run, 'config.json')),
        '',
        False,
        r'holds checkpoints but no config\.json',
    ),
    'config.json is {}': (
        lambda run: open(os.path.join(run, 'config.json'), 'w').write('{}'),
        '',
        False,
        r"config\.json does not hold a run's config",
    ),
}


@pytest.mark.parametrize('case', sorted(_UNWRITABLE))
def test_unwritable_output_is_one_line_before_any_work(case, trained, tmp_path):
  spoil, workdir, start_over, pattern = _UNWRITABLE[case]
  run = _copy(trained, tmp_path)
  try:
    spoil(run)
    before = _contents(run)
    with pytest.raises(checkpoint_lib.cli.UserError, match=pattern):
      train.train_and_evaluate(
          _config(num_train_steps=8),
          os.path.join(run, workdir),
          start_over=start_over,
      )
    assert _contents(run) == before
  finally:
    for name in ('metrics.jsonl', 'checkpoints'):
      subprocess.run(
          ['chattr', '-i', os.path.join(run, name)], capture_output=True
      )


@pytest.fixture
def full_disk(tmp_path):
  """A 4 MiB file system, filled up (root only; skipped elsewhere)."""
  mount = tmp_path / 'disk'
  mount.mkdir()
  try:
    subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', str(mount)],
        check=True,
        capture_output=True,
    )
  except (OSError, subprocess.CalledProcessError):
    pytest.skip('cannot mount a small file system here (not root)')
  try:
    yield str(mount)
  finally:
    subprocess.run(['umount', str(mount)], capture_output=True)


def test_a_full_disk_is_one_line_and_loses_nothing(trained, full_disk):
  # The filler exists before the copy: on a nearly full tmpfs even an empty
  # new file can be refused.
  with open(os.path.join(full_disk, 'filler'), 'wb') as f:
    run = shutil.copytree(trained, os.path.join(full_disk, 'run'))
    try:
      while True:
        f.write(b'\0' * 65536)
        f.flush()
    except OSError:
      pass
  before = _contents(run)
  with pytest.raises(
      checkpoint_lib.cli.ResourceError, match=r'No space left on device'
  ):
    train.train_and_evaluate(_config(num_train_steps=8), run)
  assert _contents(run) == before


def test_a_failed_background_save_stops_the_run_at_once(tmp_path):
  workdir = tmp_path / 'run'
  t0 = time.time()
  proc = _run(
      [
          os.path.join('tests', 'fixtures', 'failing_save.py'),
          '4',
          f'--config={TEST_CONFIG}',
          f'--workdir={workdir}',
          '--config.num_train_steps=40',
      ],
      ROOT,
  )
  # orbax's writer threads would hold the exit for 300 s.
  assert time.time() - t0 < 150
  _assert_one_line_error(
      proc, r'cannot write checkpoint 4 .*Operation not permitted.*library\.log'
  )
  steps = [r['step'] for r in metrics_log.MetricsLog(str(workdir)).read()]
  assert max(steps) <= 5
  ckpt = checkpoint_lib.Checkpointer(str(workdir), keep=3)
  assert ckpt.all_steps() == [0, 2]
  assert 'Traceback' in (workdir / train.LIBRARY_LOG).read_text()


# --- Readers recover like the trainer --------------------------------------


def test_generate_falls_back_to_the_newest_restorable_checkpoint(
    trained, tmp_path
):
  run = _copy(trained, tmp_path)
  _damage(run, 6)
  before = _contents(run)
  config, _, chosen = inference.load_generator(run)
  assert chosen == 4 and config.model.g_width == 8
  with pytest.raises(
      checkpoint_lib.cli.UserError, match=r'checkpoint 6 .*cannot be restored'
  ):
    inference.load_generator(run, 6)
  assert _contents(run) == before  # A reader moves nothing aside.


class _FakeScorer:

  def __init__(self, config):
    del config

  def score(self, sample):
    return {
        'fid': float(np.asarray(sample(np.zeros((1, 16), np.float32))).std())
    }


def test_evaluate_skips_a_damaged_checkpoint_and_checks_steps_first(
    trained, tmp_path, monkeypatch
):
  run = _copy(trained, tmp_path)
  _damage(run, 4)
  monkeypatch.setattr(evaluate.scorer, 'Scorer', _FakeScorer)
  assert [r['step'] for r in evaluate.score_checkpoints(run)] == [2, 6]
  with pytest.raises(checkpoint_lib.cli.UserError, match='checkpoint 4'):
    evaluate.score_checkpoints(run, [4])
  with pytest.raises(
      checkpoint_lib.cli.UserError, match=r"--steps=2,abc: 'abc' is not"
  ):
    evaluate.parse_steps(['2', 'abc'])
  with pytest.raises(
      checkpoint_lib.cli.UserError, match=r'no checkpoint 5 .*\[2, 4, 6\]'
  ):
    evaluate.score_checkpoints(run, [2, 5])


def test_scan_and_prepare_cat_check_their_outputs_first(tmp_path, capsys):
  from catgan_jax.data import prepare_cat  # pylint: disable=g-import-not-at-top
  from catgan_jax.data import scan  # pylint: disable=g-import-not-at-top

  images = tmp_path / 'images'
  images.mkdir()
  Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(images / 'a.png')
  (tmp_path / 'notes.txt').write_text('a user file')
  cases = [
      (
          scan.main,
          [str(images), '--manifest', str(tmp_path)],
          r"--manifest='.*' is a folder, not a file",
      ),
      (
          scan.main,
          [str(images), '--report', str(tmp_path / 'absent' / 'r.json')],
          r'its folder .*absent does not exist',
      ),
      (
          scan.main,
          [str(images), '--manifest', '/sys/catgan_jax_manifest.txt'],
          r"cannot write --manifest='/sys/catgan_jax_manifest\.txt'",
      ),
      (scan.main, [str(tmp_path / 'absent')], r'absent.*does not exist'),
      (
          prepare_cat.main,
          [str(tmp_path), str(tmp_path / 'notes.txt')],
          r"OUTPUT='.*notes\.txt' is a file, not a folder",
      ),
      (
          prepare_cat.main,
          [str(tmp_path), '/sys/catgan_jax_faces'],
          r"cannot write OUTPUT='/sys/catgan_jax_faces'",
      ),
  ]
  empty = tmp_path / 'empty'
  empty.mkdir()
  (empty / 'readme.txt').write_text('no images')
  cases.append((scan.main, [str(empty)], r'holds no image files \(1 other'))
  before = _contents(tmp_path)
  for program, argv, pattern in cases:
    assert program(argv) == 2, argv
    errors = [
        l for l in capsys.readouterr().err.splitlines() if ': error: ' in l
    ]
    assert len(errors) == 1 and re.search(pattern, errors[0]), errors
  assert _contents(tmp_path) == before


def test_plots_checks_its_output_first(trained, tmp_path):
  run = _copy(trained, tmp_path)
  before = _contents(run)
  proc = _run(
      ['-m', 'catgan_jax.plots', f'--workdir={run}', '--out=/sys/plots'], ROOT
  )
  _assert_one_line_error(proc, r"cannot write --out='/sys/plots'")
  assert _contents(run) == before


def test_plots_into_a_held_workdir_is_refused(trained, tmp_path):
  run = _copy(trained, tmp_path)
  before = _contents(run)
  holder = _hold(run)
  try:
    proc = _run(['-m', 'catgan_jax.plots', f'--workdir={run}'], ROOT)
    _assert_one_line_error(proc, rf'in use by .*\(PID {holder.pid} ')
    # Drawing elsewhere only reads the run.
    out = tmp_path / 'elsewhere'
    proc = _run(
        ['-m', 'catgan_jax.plots', f'--workdir={run}', f'--out={out}'], ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / 'losses.png').is_file()
  finally:
    holder.kill()
    holder.wait()
  with workdir_lib.claim(run):  # The killed holder's lock file goes.
    pass
  assert _contents(run) == before


def test_generate_refuses_to_overwrite_a_users_files(trained, tmp_path):
  out = tmp_path / 'out'
  out.mkdir()
  (out / '000001.png').write_bytes(b'a user picture')
  with pytest.raises(
      checkpoint_lib.cli.UserError,
      match=r'already holds 000001\.png, which this would overwrite; use '
      '--overwrite',
  ):
    generate.generate(trained, str(out), num=3)
  assert os.listdir(out) == ['000001.png']
  # A grid writes grid.png only: the user's file does not stand in its way.
  generate.generate(trained, str(out), num=3, grid=True)
  written = generate.generate(trained, str(out), num=3, overwrite=True)
  assert len(written) == 3


def test_scan_imports_opencv_in_the_main_thread_first(tmp_path, monkeypatch):
  from catgan_jax.data import scan  # pylint: disable=g-import-not-at-top

  images = tmp_path / 'images'
  images.mkdir()
  for i in range(3):
    Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(
        images / f'{i}.png'
    )
  threads = []

  def detector():
    threads.append(threading.current_thread() is threading.main_thread())
    return lambda rgb: True

  monkeypatch.setattr(scan, 'cat_face_detector', detector)
  report = scan.scan_folder(str(images), cat_faces=True, near_threshold=-1)
  assert len(report.good_paths()) == 3
  # The first `import cv2` (inside the detector) is the main thread's.
  assert threads[0]
