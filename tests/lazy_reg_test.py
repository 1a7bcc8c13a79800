"""Lazy regularisation (loss.reg_every): schedule, weights, optimiser, resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from catgan_jax import config_lib
from catgan_jax import models
from catgan_jax import schedules
from catgan_jax import state as state_lib
from catgan_jax import step as step_lib
from catgan_jax import train
from tests.fixtures import run_steps


def _config(**overrides):
  return helpers.config_with(
      **{
          'model.g_width': 4,
          'model.d_width': 4,
          'model.z_dim': 8,
          'loss.r1_weight': 1.0,
          'loss.r2_weight': 0.5,
          'loss.reg_every': 4,
          **overrides,
      }
  )


def test_which_iterations_regularise():
  phases = [step_lib.update_phase(_config(), s) for s in range(9)]
  assert [p.regularize_d for p in phases] == [
      True,
      False,
      False,
      False,
      True,
      False,
      False,
      False,
      True,
  ]
  assert all(p.update_d and p.update_g for p in phases)
  # Every 4th D update: with D on every 2nd iteration, iterations 0, 8, 16.
  config = _config(**{'train.d_every_k_steps': 2})
  reg = [s for s in range(20) if step_lib.update_phase(config, s).regularize_d]
  assert reg == [0, 8, 16]
  # reg_every = 1: the penalties in every iteration's D loss (as before).
  eager = _config(**{'loss.reg_every': 1})
  assert all(step_lib.update_phase(eager, s).regularize_d for s in range(9))


def test_lazy_d_optimiser_is_stylegan2_adas():
  config = _config(**{'optim.b1': 0.5, 'optim.b2': 0.99})
  g, d = models.create_models(config)
  state = state_lib.create_state(config, g, d)
  ratio = 4 / 5  # mb_ratio = k / (k + 1).
  assert schedules.lazy_reg_ratio(config, 'd') == ratio
  assert schedules.lazy_reg_ratio(config, 'g') == 1.0
  hp = state.d.opt_state.hyperparams
  np.testing.assert_allclose(hp['learning_rate'], 2e-4 * ratio, rtol=1e-6)
  np.testing.assert_allclose(hp['b1'], 0.5**ratio, rtol=1e-6)
  np.testing.assert_allclose(hp['b2'], 0.99**ratio, rtol=1e-6)
  g_hp = state.g.opt_state.hyperparams
  np.testing.assert_allclose(g_hp['learning_rate'], 2e-4, rtol=1e-6)
  # A beta2 schedule is raised to the same power for D.
  config.schedule.decay_nimg = 1000
  config.schedule.b2_end = 0.999
  b2 = schedules.optimizer_hyperparams(config, 'd', 0)['b2']
  np.testing.assert_allclose(b2, 0.99**ratio, rtol=1e-6)
  np.testing.assert_allclose(
      schedules.optimizer_hyperparams(config, 'g', 0)['b2'], 0.99, rtol=1e-6
  )


@pytest.fixture(scope='module')
def two_programs():
  """One state stepped by the regularising and the plain lazy programs."""
  config = _config()
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  batch = jax.random.randint(
      jax.random.PRNGKey(0), (8, 16, 16, 3), 0, 256
  ).astype(jnp.uint8)
  out = {}
  for reg in (True, False):
    phase = step_lib.Phase(True, True, reg)
    fn = jax.jit(step_lib.make_train_step(config, g, d, phase))
    out[reg] = jax.device_get(fn(state, batch))
  return config, state, out


def test_penalties_only_on_the_regularising_step(two_programs):
  config, _, out = two_programs
  (reg_state, reg_m), (plain_state, plain_m) = out[True], out[False]
  assert 'r1' not in plain_m and 'd_reg_loss' not in plain_m
  # The main D loss has no penalty in either program (same draws).
  assert reg_m['d_loss'] == plain_m['d_loss']
  # The regularising step's weights are k times the loss's: 4 x gamma / 2.
  k = config.loss.reg_every
  expected = k * (
      0.5 * config.loss.r1_weight * reg_m['r1']
      + 0.5 * config.loss.r2_weight * reg_m['r2']
  )
  np.testing.assert_allclose(reg_m['d_reg_loss'], expected, rtol=1e-5)
  assert reg_m['d_reg_grad_norm'] > 0 and bool(reg_m['finite'])
  # Its extra optimiser step moves D (only D) further.
  assert not np.array_equal(
      jax.tree.leaves(reg_state.d.params)[0],
      jax.tree.leaves(plain_state.d.params)[0],
  )
  # Adam's step count: two D steps on the regularising iteration.
  count = lambda s: int(jax.tree.leaves(s.d.opt_state.inner_state)[0])
  assert count(reg_state) == count(plain_state) + 1


def test_gain_multiplies_every_penalty(two_programs):
  config, state, _ = two_programs
  config = helpers.override(config, **{'loss.gp_weight': 2.0})
  g, d = models.create_models(config)
  nets = step_lib.Networks.from_config(config, g, d)
  keys = step_lib.iteration_keys(state.rng, 0)
  hp = step_lib.hyperparams(config, jnp.int32(0), state.aug_p)
  real = jax.random.uniform(jax.random.PRNGKey(1), (8, 16, 16, 3)) * 2 - 1
  fake = jax.random.uniform(jax.random.PRNGKey(2), (8, 16, 16, 3)) * 2 - 1
  args = (nets, 0.0, state.d.params, state.d.batch_stats, real, fake, keys, hp)
  plain, aux = step_lib.add_penalties(*args)
  lazy, aux4 = step_lib.add_penalties(*args, gain=4)
  assert sorted(aux) == ['gp', 'r1', 'r2']
  np.testing.assert_allclose(lazy, 4 * plain, rtol=1e-5)
  for name in aux:
    np.testing.assert_allclose(aux4[name], aux[name], rtol=1e-6)


def test_two_programs_per_run():
  config = _config()
  compiled = []
  step_fn = step_lib.ScheduledStep(config, lambda p: compiled.append(p) or p)
  for s in range(12):
    step_fn.precompile(s)
  assert sorted(compiled) == [(True, True, False), (True, True, True)]


@pytest.mark.parametrize(
    'overrides, message',
    [
        ({'loss.reg_every': 0}, 'loss.reg_every=0 must be an integer >= 1'),
        (
            {'loss.r1_weight': 0.0, 'loss.r2_weight': 0.0},
            'loss.reg_every=4 has no penalty',
        ),
    ],
)
def test_bad_settings_are_config_errors(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(_config(**overrides))


def test_resume_equals_uninterrupted_run(tmp_path):
  """Stopped after 3 iterations (the next regularises at 4) and resumed, a
  reg_every=4 run with adaptive ADA is bit-identical to one that ran
  through: the two programs are picked by the step number alone."""

  def config(steps):
    return _config(
        **{
            'num_train_steps': steps,
            'checkpoint_every_steps': 3,
            'sample_every_steps': 100,
            'loss.name': 'rsgan',
            'data.augment': 'ada',
            'data.ada_target': 0.6,
            'data.ada_interval': 2,
            'data.ada_kimg': 0.01,
        }
    )

  straight = train.train_and_evaluate(config(6), str(tmp_path / 'a'))
  train.train_and_evaluate(config(3), str(tmp_path / 'b'))
  resumed = train.train_and_evaluate(config(6), str(tmp_path / 'b'))
  a, b = run_steps.flat_params(straight), run_steps.flat_params(resumed)
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert float(straight.aug_p) == float(resumed.aug_p)
  np.testing.assert_array_equal(straight.ada_stats, resumed.ada_stats)
  for x, y in zip(
      jax.tree.leaves(straight.d.opt_state),
      jax.tree.leaves(resumed.d.opt_state),
  ):
    np.testing.assert_array_equal(x, y)
