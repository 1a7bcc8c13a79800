"""Never lose a run: kill/resume, preemption, rollback, corrupt checkpoints,
config validation and workdir safety."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from catgan_jax import checkpoint as checkpoint_lib
from catgan_jax import config_lib
from catgan_jax import metrics_log
from catgan_jax import train
from tests.fixtures import run_steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LONG_STEPS = 60


def _config(**overrides):
  return helpers.config_with(**overrides)


def _long_config():
  # Sampling every step makes each step slow enough to be interrupted.
  return dict(
      num_train_steps=LONG_STEPS, checkpoint_every_steps=5, sample_every_steps=1
  )


def _steps(workdir):
  return [r['step'] for r in metrics_log.MetricsLog(str(workdir)).read()]


def _start(workdir, *overrides):
  args = [
      sys.executable,
      'tests/fixtures/run_steps.py',
      str(workdir),
      str(workdir) + '.npz',
      *overrides,
  ]
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.Popen(
      args,
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )


def _wait_for_step(workdir, step, proc, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if any(s >= step for s in _steps(workdir)):
      return
    time.sleep(0.01)
  raise AssertionError(
      f'run never reached step {step}: ' f'{proc.communicate()[0][-2000:]}'
  )


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  state = train.train_and_evaluate(_config(**_long_config()), str(workdir))
  return workdir, run_steps.flat_params(state)


def _overrides(d):
  return [f'--config.{k}={v}' for k, v in d.items()]


def test_sigkill_then_resume_is_bit_exact(uninterrupted, tmp_path):
  ref_dir, ref_params = uninterrupted
  workdir = tmp_path / 'killed'
  proc = _start(workdir, *_overrides(_long_config()))
  _wait_for_step(workdir, 17, proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert max(_steps(workdir)) < LONG_STEPS
  state = train.train_and_evaluate(_config(**_long_config()), str(workdir))
  params = run_steps.flat_params(state)
  for name, value in ref_params.items():
    np.testing.assert_array_equal(params[name], value, err_msg=name)
  assert _steps(workdir) == list(range(1, LONG_STEPS + 1))
  assert (
      metrics_log.MetricsLog(str(workdir)).read()
      == metrics_log.MetricsLog(str(ref_dir)).read()
  )


def test_sigterm_checkpoints_and_exits_0(tmp_path):
  workdir = tmp_path / 'term'
  proc = _start(workdir, *_overrides(_long_config()))
  _wait_for_step(workdir, 8, proc)
  proc.send_signal(signal.SIGTERM)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 0, out[-2000:]
  assert 'Stopped at step' in out
  ckpt = checkpoint_lib.Checkpointer(str(workdir), keep=3)
  last = ckpt.latest_step()
  ckpt.close()
  assert 8 <= last < LONG_STEPS
  assert max(_steps(workdir)) == last


class _PoisonedStep:
  """A train step whose iteration `at` leaves NaN parameters in D."""

  def __init__(self, inner, at: int):
    self._inner, self._at, self._done = inner, at, False

  def precompile(self, step):
    self._inner.precompile(step)

  def __call__(self, state, batch, step):
    state, metrics = self._inner(state, batch, step)
    if step + 1 == self._at and not self._done:
      self._done = True
      state = state.replace(
          d=state.d.replace(
              params=jax.tree.map(lambda p: p * jnp.nan, state.d.params)
          )
      )
      metrics = dict(metrics, finite=jnp.zeros((), bool))
    return state, metrics


def test_nan_triggers_one_rollback_and_run_finishes(tmp_path, monkeypatch):
  build = train.build

  def poisoned_build(config, mesh):
    run = build(config, mesh)
    return run._replace(train_step=_PoisonedStep(run.train_step, at=3))

  monkeypatch.setattr(train, 'build', poisoned_build)
  config = _config(num_train_steps=6, checkpoint_every_steps=2)
  state = train.train_and_evaluate(config, str(tmp_path))
  params = run_steps.flat_params(state)
  assert all(np.isfinite(v).all() for v in params.values())
  records = metrics_log.MetricsLog(str(tmp_path)).read()
  assert [r['step'] for r in records] == [1, 2, 3, 4, 5, 6]
  # One rollback halved both learning rates from step 3 on.
  lr = config.optim.g_lr
  assert [r['g_lr'] for r in records] == pytest.approx(
      [lr, lr, lr / 2, lr / 2, lr / 2, lr / 2]
  )
  assert all(np.isfinite(r['d_loss']) for r in records)
  # The divergence is on the run's record, for the study's counts.
  divergences = metrics_log.read_divergences(str(tmp_path))
  assert [(d['step'], d['why']) for d in divergences] == [
      (3, 'non-finite loss or parameters')
  ]


def test_divergence_gives_up_after_max_rollbacks(tmp_path):
  # A loss bound no loss can meet: every check is a divergence.
  config = _config(**{'train.max_loss': 1e-9, 'train.max_rollbacks': 2})
  with pytest.raises(train.DivergenceError, match='train.max_rollbacks'):
    train.train_and_evaluate(config, str(tmp_path))


def test_truncated_latest_checkpoint_falls_back(tmp_path):
  reference = tmp_path / 'reference'
  ref_state = train.train_and_evaluate(
      _config(num_train_steps=6), str(reference)
  )
  workdir = tmp_path / 'run'
  train.train_and_evaluate(_config(), str(workdir))  # Checkpoints 0, 2, 4.
  for root, _, files in os.walk(workdir / 'checkpoints' / '4'):
    for name in files:
      open(os.path.join(root, name), 'w').close()  # Truncate every file.
  state = train.train_and_evaluate(_config(num_train_steps=6), str(workdir))
  assert (workdir / 'checkpoints_corrupt' / '4').exists()
  ref, got = run_steps.flat_params(ref_state), run_steps.flat_params(state)
  for name, value in ref.items():
    np.testing.assert_array_equal(got[name], value, err_msg=name)
  assert _steps(workdir) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    'overrides, field',
    [
        ({'loss.name': 'nope'}, 'loss.name'),
        ({'model.name': 'nope'}, 'model.name'),
        ({'data.source': 'nope'}, 'data.source'),
        ({'data.image_size': 48}, 'data.image_size'),
        ({'num_train_steps': 0}, 'num_train_steps'),
        ({'batch_size': -8}, 'batch_size'),
        ({'optim.d_lr': 0.0}, 'optim.d_lr'),
        ({'optim.g_name': 'sgdx'}, 'optim.g_name'),
        ({'data.source': 'folder', 'data.dir': '/no/such/dir'}, 'data.dir'),
        # Found before training, evaluation on or off.
        ({'eval.batch_size': 0}, 'eval.batch_size=0'),
        ({'eval.kid_subsets': 0}, 'eval.kid_subsets=0'),
        ({'eval.features': 'foo'}, "eval.features='foo' is unknown"),
        ({'optim.d_lr': float('inf')}, 'optim.d_lr=inf must be a finite'),
        ({'data.manifest': ROOT}, 'data.manifest=.* is a folder, not a file'),
        (
            {'eval.features_path': ROOT},
            'eval.features_path=.* is a folder, not a file',
        ),
        (
            {'data.source': 'folder', 'data.dir': __file__},
            'data.dir=.* is a file, not a folder',
        ),
        # The DCGAN family's fields are refused where they would be ignored.
        (
            {'model.name': 'r3gan', 'model.norm': 'none'},
            "model.norm='none' is only used by model.name 'dcgan'",
        ),
        (
            {'model.name': 'r3gan', 'model.kernel_size': 3},
            'model.kernel_size=3 is only used by',
        ),
        (
            {'model.name': 'fastgan', 'model.spectral_norm': True},
            "model.spectral_norm=True is only used by .* not 'fastgan'",
        ),
        (
            {'model.name': 'fastgan_lite', 'model.d_norm': 'layer'},
            "model.d_norm='layer' is only used by",
        ),
    ],
)
def test_invalid_config_names_field_and_writes_nothing(
    overrides, field, tmp_path
):
  workdir = tmp_path / 'w'
  pattern = field if '=' in field else field.replace('.', r'\.')
  with pytest.raises(config_lib.ConfigError, match=pattern):
    train.train_and_evaluate(_config(**overrides), str(workdir))
  assert not workdir.exists()


def test_batch_not_divisible_by_devices(monkeypatch):
  monkeypatch.setattr(jax, 'device_count', lambda: 3)
  with pytest.raises(config_lib.ConfigError, match='batch_size=8'):
    config_lib.validate(_config())


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  with pytest.raises(
      checkpoint_lib.cli.UserError, match=r'workdir=.*file is a file'
  ):
    train.train_and_evaluate(_config(), str(blocker / 'run'))
  assert blocker.read_text() == 'not a directory'


def test_workdir_with_other_config_is_refused(tmp_path):
  train.train_and_evaluate(_config(num_train_steps=2), str(tmp_path))
  with pytest.raises(config_lib.ConfigError, match='loss.name'):
    train.train_and_evaluate(_config(**{'loss.name': 'hinge'}), str(tmp_path))
  # Longer runs and explicit permission are fine.
  train.train_and_evaluate(_config(num_train_steps=3), str(tmp_path))
  train.train_and_evaluate(
      _config(
          num_train_steps=4, allow_config_change=True, **{'loss.name': 'hinge'}
      ),
      str(tmp_path),
  )
  assert config_lib.load_config(str(tmp_path)).loss.name == 'hinge'
