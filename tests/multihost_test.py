"""Scale-out tests on CPU: many devices and many processes train alike.

The same run of configs/test.py (global batch 8) on 1 device, on 8 simulated
devices in one process, and on 2 processes x 2 devices launched by
launch/local_multiprocess.sh (the code path of a pod: jax.distributed, gloo
collectives, per-process data shards, cooperative orbax checkpoints) ends with
the same parameters; a checkpoint written by those 4 devices resumes on 1.

Every multi-device program runs in a subprocess with a timeout and one retry
on exit 134 or timeout. XLA:CPU starts each simulated device's part of a
program as a task on a shared thread pool, not necessarily in order, and lets
at most 32 programs per device be in flight: when the host dispatches more
than 32 multi-device programs ahead, a device can fill its 32 slots with
later programs waiting for the output of an earlier one that then cannot
start, the other devices wait for it in an all-reduce, and XLA aborts the
process after 40 s (exit 134, "Termination timeout for `all reduce
RendezvousKey` ... only 3 of them arrived"). configs/test.py fetches metrics
every step, so the host never runs that far ahead here; the retry covers
what is left.
"""

import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from catgan_jax import checkpoint as checkpoint_lib
from catgan_jax import metrics_log
from catgan_jax import train
from configs import test as test_config
from tests.fixtures import run_steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, 'launch', 'local_multiprocess.sh')
TIMEOUT_S = 480

# A multi-process run reads a disjoint shard of the images per process, so
# its global batches are those of a 1-process run only when every batch is
# the whole un-augmented data set: 8 images, batch 8, no flip (the model
# then sees the same multiset of real images at every step, in any order).
FULL_BATCH = {'data.num_synthetic': 8, 'data.flip': False}
RTOL, ATOL = 1e-4, 1e-5


def _config(**overrides):
  config = test_config.get_config()
  for field, value in {**FULL_BATCH, **overrides}.items():
    node = config
    *parents, leaf = field.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def _flags(**overrides) -> list[str]:
  return [f'--config.{k}={v}' for k, v in {**FULL_BATCH, **overrides}.items()]


def _run(args, env_extra=None, timeout=TIMEOUT_S, retries=1):
  """Runs `args` in a new process group; retries once on exit 134 or timeout.

  Returns:
    (exit code, combined output); exit code None when the last try timed out.
  """
  env = dict(
      os.environ,
      JAX_PLATFORMS='cpu',
      TF_CPP_MIN_LOG_LEVEL='2',
      **(env_extra or {}),
  )
  for attempt in range(retries + 1):
    # A session of its own, so that a timeout kills every process the
    # launcher started, not only the launcher.
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
      output, _ = proc.communicate(timeout=timeout)
      code = proc.returncode
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      output, _ = proc.communicate()
      code = None
    if code not in (None, 134) or attempt == retries:
      return code, output
  return code, output


def _assert_params_close(actual, expected, **tolerance):
  assert set(expected) <= set(actual.keys())
  for name, value in expected.items():
    np.testing.assert_allclose(actual[name], value, err_msg=name, **tolerance)


def _assert_params_equal(a, b):
  names = [n for n in a.keys() if n != 'device_count']
  assert names and sorted(names) == sorted(
      n for n in b.keys() if n != 'device_count'
  )
  for name in names:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _checkpoint_steps(workdir):
  return sorted(
      int(d)
      for d in os.listdir(os.path.join(workdir, checkpoint_lib.CHECKPOINT_DIR))
      if d.isdigit()
  )


@pytest.fixture(scope='module')
def compilation_cache(tmp_path_factory):
  """A persistent compilation cache shared by this module's subprocesses."""
  return {
      'JAX_COMPILATION_CACHE_DIR': str(tmp_path_factory.mktemp('jax_cache'))
  }


@pytest.fixture(scope='module')
def one_device(tmp_path_factory):
  """The 1-device reference: parameters after 3 and after 6 steps."""
  workdir = str(tmp_path_factory.mktemp('one_device'))
  three = train.train_and_evaluate(_config(num_train_steps=3), workdir)
  three = run_steps.flat_params(three)
  six = train.train_and_evaluate(_config(num_train_steps=6), workdir)
  return {3: three, 6: run_steps.flat_params(six)}


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory, compilation_cache):
  """2 processes x 2 devices: 4 steps, stop, copy the workdir, resume to 6."""
  base = tmp_path_factory.mktemp('two_processes')
  workdir, at_four = str(base / 'run'), str(base / 'run_at_step_4')
  launch = [LAUNCHER, '2', workdir]
  env = dict(
      compilation_cache,
      PYTHON=sys.executable,
      DEVICES_PER_PROCESS='2',
      SCRIPT=os.path.join('tests', 'fixtures', 'run_steps.py'),
  )
  first = _run(launch + [str(base / 'four.npz'), *_flags()], env)
  second = (None, 'not run: the first part failed')
  if first[0] == 0:
    shutil.copytree(workdir, at_four)
    second = _run(
        launch + [str(base / 'six.npz'), *_flags(num_train_steps=6)], env
    )
  return {
      'base': base,
      'workdir': workdir,
      'at_four': at_four,
      'first': first,
      'second': second,
  }


def test_eight_devices_match_one_device(
    one_device, compilation_cache, tmp_path
):
  out = tmp_path / 'eight.npz'
  code, output = _run(
      [
          sys.executable,
          os.path.join('tests', 'fixtures', 'run_steps.py'),
          str(tmp_path / 'run'),
          str(out),
          *_flags(num_train_steps=3),
      ],
      env_extra=dict(
          compilation_cache,
          XLA_FLAGS='--xla_force_host_platform_device_count=8',
      ),
  )
  assert code == 0, output[-3000:]
  eight = np.load(out)
  assert int(eight['device_count']) == 8
  # Each device holds one image of the batch; BatchNorm statistics are still
  # those of all 8, so only the summation order differs from one device.
  _assert_params_close(eight, one_device[3], rtol=RTOL, atol=ATOL)


def test_two_processes_train_resume_and_agree(two_processes, one_device):
  run = two_processes
  code, output = run['first']
  assert code == 0, output[-3000:]
  assert 'local_multiprocess: 2 processes x 2 CPU device(s)' in output
  four = [np.load(run['base'] / f'four.{i}.npz') for i in (0, 1)]
  assert [int(f['device_count']) for f in four] == [4, 4]
  _assert_params_equal(four[0], four[1])
  assert _checkpoint_steps(run['at_four']) == [0, 2, 4]

  code, output = run['second']
  assert code == 0, output[-3000:]
  for i in (0, 1):
    assert f'[{i}] ' in output and 'Resumed from checkpoint at step 4.' in (
        ''.join(
            line
            for line in output.splitlines(keepends=True)
            if line.startswith(f'[{i}] ')
        )
    )
  assert not os.path.exists(
      os.path.join(run['workdir'], checkpoint_lib.CORRUPT_DIR)
  )
  assert _checkpoint_steps(run['workdir'])[-1] == 6
  six = [np.load(run['base'] / f'six.{i}.npz') for i in (0, 1)]
  # Every process holds a bit-identical replica of the state...
  _assert_params_equal(six[0], six[1])
  # ...equal to the 1-device run of the same length.
  _assert_params_close(six[0], one_device[6], rtol=RTOL, atol=ATOL)
  # Only process 0 writes metrics.jsonl: each step once.
  records = metrics_log.MetricsLog(run['workdir']).read()
  assert [r['step'] for r in records] == [1, 2, 3, 4, 5, 6]


def test_checkpoint_from_four_devices_resumes_on_one(
    two_processes, one_device, caplog
):
  assert two_processes['first'][0] == 0, two_processes['first'][1][-3000:]
  workdir = two_processes['at_four']
  assert jax.device_count() == 1
  caplog.set_level('INFO')
  state = train.train_and_evaluate(_config(num_train_steps=6), workdir)
  # A checkpoint that does not restore is moved aside and training restarts
  # from an older one, which would reach the same parameters: check that the
  # step-4 checkpoint itself was restored.
  assert 'Resumed from checkpoint at step 4.' in caplog.text
  assert not os.path.exists(os.path.join(workdir, checkpoint_lib.CORRUPT_DIR))
  assert int(jax.device_get(state.step)) == 6
  _assert_params_close(
      run_steps.flat_params(state), one_device[6], rtol=RTOL, atol=ATOL
  )


def _pid_of_process(process_id: int, workdir: str) -> int | None:
  """The pid of process `process_id` of the launched run in `workdir`."""
  for entry in os.listdir('/proc'):
    if not entry.isdigit():
      continue
    try:
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        args = f.read().decode(errors='replace').split('\0')
    except OSError:
      continue
    if (
        workdir in args
        and 'python' in os.path.basename(args[0])
        and f'--config.distributed.process_id={process_id}' in args
    ):
      return int(entry)
  return None


def test_two_processes_stop_together_at_a_logged_step(
    compilation_cache, tmp_path
):
  """SIGTERM to one process: both stop at the next logged/checkpoint step.

  The processes agree on stopping (an all-gather) only at those steps, so
  the stop comes at a multiple of 5 here, with its checkpoint, on both.
  """
  workdir = str(tmp_path / 'run')
  env = dict(
      compilation_cache,
      PYTHON=sys.executable,
      DEVICES_PER_PROCESS='2',
      SCRIPT=os.path.join('tests', 'fixtures', 'run_steps.py'),
  )
  flags = _flags(
      num_train_steps=500,
      log_every_steps=5,
      checkpoint_every_steps=5,
      sample_every_steps=1000,
  )
  proc = subprocess.Popen(
      [LAUNCHER, '2', workdir, str(tmp_path / 'out.npz'), *flags],
      cwd=ROOT,
      env=dict(
          os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2', **env
      ),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      start_new_session=True,
  )
  try:
    # Wait for the first logged step, then stop process 1 only.
    deadline = TIMEOUT_S
    while (
        deadline > 0
        and proc.poll() is None
        and not (
            os.path.exists(os.path.join(workdir, 'metrics.jsonl'))
            and metrics_log.MetricsLog(workdir).read()
        )
    ):
      subprocess.run(['sleep', '0.5'], check=True)
      deadline -= 0.5
    pid = _pid_of_process(1, workdir)
    assert proc.poll() is None and pid, 'the run did not start'
    os.kill(pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=TIMEOUT_S)
  except BaseException:
    os.killpg(proc.pid, signal.SIGKILL)
    raise
  assert proc.returncode == 0, output[-3000:]
  stopped = {}
  for line in output.splitlines():
    if 'Stopped at step' in line and line[:1] == '[':
      stopped[line[1]] = int(line.split('Stopped at step')[1].split()[0])
  assert set(stopped) == {'0', '1'}, output[-3000:]
  assert stopped['0'] == stopped['1'] < 500
  assert stopped['0'] % 5 == 0, stopped
  assert _checkpoint_steps(workdir)[-1] == stopped['0']
