"""The jitted update: schedules, clipping, EMA, penalties and metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from catgan_jax import models
from catgan_jax import state as state_lib
from catgan_jax import step as step_lib
from catgan_jax import diffaugment
from configs import test as test_config


def _config(**overrides):
  config = test_config.get_config()
  config.model.g_width = 4
  config.model.d_width = 4
  config.model.z_dim = 8
  return helpers.override(config, **overrides)


def _run(config, num_steps):
  """Returns the states before and after each of `num_steps` steps."""
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  step_fn = step_lib.ScheduledStep(
      config,
      lambda phase: jax.jit(step_lib.make_train_step(config, g, d, phase)),
  )
  batch = jax.random.randint(
      jax.random.PRNGKey(0), (8, 16, 16, 3), 0, 256
  ).astype(jnp.uint8)
  states, metrics = [state], []
  for i in range(num_steps):
    state, m = step_fn(state, batch, i)
    states.append(state)
    metrics.append(jax.device_get(m))
  return states, metrics


def _same(a, b):
  return all(
      jax.tree.leaves(
          jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)
      )
  )


@pytest.fixture(scope='module')
def scheduled_run():
  """n_critic=3, D every 2nd step, EMA 0.9: four steps of every schedule."""
  return _run(
      _config(
          **{
              'train.d_steps_per_g_step': 3,
              'train.d_every_k_steps': 2,
              'train.ema_decay': 0.9,
          }
      ),
      4,
  )


def test_metrics_are_finite_and_in_range(scheduled_run):
  _, metrics = scheduled_run
  m = metrics[2]  # Both networks were updated at step 2.
  for key in (
      'd_loss',
      'g_loss',
      'D_x',
      'D_G_z',
      'd_real_acc',
      'd_fake_acc',
      'd_grad_norm',
      'g_grad_norm',
  ):
    assert np.isfinite(m[key]), key
  for key in ('D_x', 'D_G_z', 'd_real_acc', 'd_fake_acc'):
    assert 0.0 <= m[key] <= 1.0, key
  assert m['d_grad_norm'] > 0 and m['g_grad_norm'] > 0
  assert bool(m['finite'])


@pytest.mark.parametrize('net', ['g', 'd'])
def test_a_nan_parameter_is_reported_not_finite(net):
  """One NaN weight in either network makes the step report finite=False."""
  config = _config()
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  ts = getattr(state, net)
  leaves, tree = jax.tree.flatten(ts.params)
  leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].set(jnp.nan)
  state = state.replace(
      **{net: ts.replace(params=jax.tree.unflatten(tree, leaves))}
  )
  step_fn = jax.jit(step_lib.make_train_step(config, g, d))
  batch = jnp.zeros((8, 16, 16, 3), jnp.uint8)
  _, metrics = step_fn(state, batch)
  assert not bool(metrics['finite'])


def test_update_schedule(scheduled_run):
  states, metrics = scheduled_run
  d_updated = [
      not _same(states[i].d.params, states[i + 1].d.params) for i in range(4)
  ]
  g_updated = [
      not _same(states[i].g.params, states[i + 1].g.params) for i in range(4)
  ]
  # D on steps 0 and 2 (every 2nd); G on step 2 (every 3rd, the last of 3).
  assert d_updated == [True, False, True, False]
  assert g_updated == [False, False, True, False]
  assert [float(m['g_grad_norm']) > 0 for m in metrics] == g_updated
  assert [float(m['d_grad_norm']) > 0 for m in metrics] == d_updated
  assert all(np.isfinite(m['g_loss']) for m in metrics)


def test_update_phases():
  config = _config(
      **{'train.d_steps_per_g_step': 3, 'train.d_every_k_steps': 2}
  )
  phases = [step_lib.update_phase(config, i)[:2] for i in range(6)]
  assert phases == [
      (True, False),
      (False, False),
      (True, True),
      (False, False),
      (True, False),
      (False, True),
  ]
  assert step_lib.update_phase(_config(), 7) == (True, True, True)


def test_ema_follows_its_formula(scheduled_run):
  states, _ = scheduled_run
  decay = 0.9
  expected = jax.tree.map(
      lambda e, p: decay * e + (1 - decay) * p,
      states[2].ema_params,
      states[3].g.params,
  )
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
      states[3].ema_params,
      expected,
  )
  assert not _same(states[3].ema_params, states[3].g.params)
  assert _same(states[1].ema_params, states[0].ema_params)  # No G update.


def test_step_is_deterministic(scheduled_run):
  states, _ = scheduled_run
  again, _ = _run(
      _config(
          **{
              'train.d_steps_per_g_step': 3,
              'train.d_every_k_steps': 2,
              'train.ema_decay': 0.9,
          }
      ),
      4,
  )
  arrays = lambda s: (
      s.g.params,
      s.d.params,
      s.g.batch_stats,
      s.ema_params,
      s.g.opt_state,
      s.d.opt_state,
      s.rng,
  )
  assert _same(arrays(states[4]), arrays(again[4]))
  assert int(states[4].step) == 4


def test_wgan_clipping_keeps_every_critic_weight_in_bounds():
  config = _config(
      **{'loss.name': 'wgan', 'loss.clip': 0.01, 'optim.d_lr': 0.5}
  )  # A big step, so clipping bites.
  states, _ = _run(config, 1)
  leaves = jax.tree.leaves(states[1].d.params)
  assert max(float(jnp.max(jnp.abs(p))) for p in leaves) <= 0.01 + 1e-7
  assert any(float(jnp.max(jnp.abs(p))) == pytest.approx(0.01) for p in leaves)


def test_ema_off_tracks_params():
  states, _ = _run(_config(), 1)
  assert _same(states[1].ema_params, states[1].g.params)


def test_penalties_are_logged():
  _, metrics = _run(
      _config(
          **{
              'loss.name': 'wgan_gp',
              'loss.gp_weight': 10.0,
              'loss.r1_weight': 1.0,
              'model.d_norm': 'layer',
          }
      ),
      1,
  )
  for key in ('gp', 'r1'):
    assert np.isfinite(metrics[0][key]) and metrics[0][key] > 0, key


def test_rollback_lr_scaling():
  states, _ = _run(_config(), 0)
  scaled = state_lib.scale_learning_rate(states[0].g, 0.5)
  assert float(state_lib.learning_rate(scaled)) == pytest.approx(1e-4)


def test_ada_adjusts_p_every_interval_by_batch_times_interval_over_kimg():
  """stylegan2-ada's step: p moves only after steps 3 and 7, by 8 * 4 / 1000."""
  config = _config(
      **{
          'data.diffaugment': 'translation',
          'data.ada_target': 0.6,
          'data.ada_interval': 4,
          'data.ada_kimg': 1,
      }
  )
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  assert float(state.aug_p) == 0.0
  state = state.replace(aug_p=jnp.float32(0.5))
  step_fn = jax.jit(step_lib.make_train_step(config, g, d))
  batch = jax.random.randint(
      jax.random.PRNGKey(0), (8, 16, 16, 3), 0, 256
  ).astype(jnp.uint8)
  ps = []
  for _ in range(8):
    state, _ = step_fn(state, batch)
    ps.append(float(state.aug_p))
  delta = 8 * 4 / 1000
  assert ps[:3] == [0.5] * 3 and ps[4:7] == [ps[3]] * 3
  for before, after in ((0.5, ps[3]), (ps[3], ps[7])):
    assert abs(abs(after - before) - delta) < 1e-6, ps


def _untranslate(grad_y, shift_y, shift_x):
  """The transpose of `diffaugment.translation` (zero fill), by hand."""
  grad_x = np.zeros_like(grad_y)
  _, h, w, _ = grad_y.shape
  for i, (dy, dx) in enumerate(zip(shift_y, shift_x)):
    for r in range(h):
      for c in range(w):
        if 0 <= r + dy < h and 0 <= c + dx < w:
          grad_x[i, r + dy, c + dx] = grad_y[i, r, c]
  return grad_x


def test_penalties_differentiate_through_the_augmentation():
  """R1 and GP are taken w.r.t. the un-augmented images (stylegan2-ada)."""
  config = _config(
      **{
          'loss.name': 'wgan_gp',
          'loss.gp_weight': 10.0,
          'loss.r1_weight': 1.0,
          'model.d_norm': 'none',
          'data.diffaugment': 'translation',
          'data.diffaugment_p': 1.0,
      }
  )
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  batch = jax.random.randint(
      jax.random.PRNGKey(0), (8, 16, 16, 3), 0, 256
  ).astype(jnp.uint8)
  _, metrics = jax.jit(step_lib.make_train_step(config, g, d))(state, batch)

  # The draw the step made: translation's shifts from the reals' key.
  keys = step_lib.iteration_keys(state.rng, 0)
  op_key = jax.random.split(keys['aug_r'], 2)[0]
  key_y, key_x = jax.random.split(op_key)
  shift_y = np.asarray(jax.random.randint(key_y, (8,), -2, 3))
  shift_x = np.asarray(jax.random.randint(key_x, (8,), -2, 3))
  assert np.any(shift_y != 0) or np.any(shift_x != 0)
  translate = lambda x: diffaugment.translation(x, op_key)

  def d_grad(y):
    """Gradient of D (no augmentation) at the images it saw."""
    apply = lambda v: jnp.sum(
        d.apply(
            {'params': state.d.params, 'batch_stats': state.d.batch_stats},
            v,
            train=True,
            mutable=['batch_stats'],
        )[0]
    )
    return np.asarray(jax.grad(apply)(y))

  def norms(grad):
    return np.sqrt(np.sum(np.square(grad), axis=(1, 2, 3)))

  real = step_lib.to_float_images(batch)
  r1_grad = _untranslate(d_grad(translate(real)), shift_y, shift_x)
  np.testing.assert_allclose(
      metrics['r1'], np.mean(norms(r1_grad) ** 2), rtol=1e-4
  )
  # Not the penalty on the augmented images (the old behaviour).
  on_augmented = np.mean(norms(d_grad(translate(real))) ** 2)
  assert abs(float(metrics['r1']) - on_augmented) > 1e-3 * on_augmented

  z = step_lib.latents(keys['z'], 8, config.model.z_dim)
  fake = g.apply(
      {'params': state.g.params, 'batch_stats': state.g.batch_stats},
      z,
      train=True,
      mutable=['batch_stats'],
  )[0]
  eps = jax.random.uniform(keys['gp'], (8, 1, 1, 1))
  x_hat = eps * real + (1 - eps) * fake
  gp_grad = _untranslate(d_grad(translate(x_hat)), shift_y, shift_x)
  np.testing.assert_allclose(
      metrics['gp'], np.mean((norms(gp_grad) - 1.0) ** 2), rtol=1e-4
  )


def test_iteration_keys_of_reuse_runs_are_unchanged():
  """The keys every 'reuse' run draws are split(fold_in(rng, step), 8)."""
  rng = jax.random.PRNGKey(3)
  keys = step_lib.iteration_keys(rng, 5)
  old = jax.random.split(jax.random.fold_in(rng, 5), 8)
  for i, name in enumerate(
      ('z', 'gp', 'noise_r', 'noise_f', 'noise_g', 'aug_r', 'aug_f', 'aug_g')
  ):
    np.testing.assert_array_equal(keys[name], old[i])
  fresh = [keys[name] for name in ('z_g', 'noise_rg', 'aug_rg')]
  assert len({tuple(np.asarray(k).ravel()) for k in list(old) + fresh}) == 11


@pytest.fixture(scope='module')
def g_samples_runs():
  """One rsgan step from one state in each train.g_samples mode."""
  runs = {}
  batch = jax.random.randint(
      jax.random.PRNGKey(0), (16, 16, 16, 3), 0, 256
  ).astype(jnp.uint8)
  for mode in ('reuse', 'fresh_z', 'fresh_z_and_reals'):
    config = _config(**{'loss.name': 'rsgan', 'train.g_samples': mode})
    g, d = models.create_models(config)
    state = jax.jit(lambda: state_lib.create_state(config, g, d))()
    # 'fresh_z_and_reals' reads 16 images: D the even rows, G the odd ones.
    step_batch = batch if mode == 'fresh_z_and_reals' else batch[0::2]
    assert step_batch.shape[0] == step_lib.input_batch_size(config)
    new_state, metrics = jax.jit(step_lib.make_train_step(config, g, d))(
        state, step_batch
    )
    runs[mode] = (g, d, state, new_state, jax.device_get(metrics))
  return batch, runs


def _g_grad_norm(g, d, state, new_state, z, real):
  """|grad| of rsgan's G loss at G(z) and `real` against the updated D."""

  def apply_d(x):
    return d.apply(
        {'params': new_state.d.params, 'batch_stats': new_state.d.batch_stats},
        x,
        train=True,
        mutable=['batch_stats'],
    )[0]

  def loss(params):
    fake = g.apply(
        {'params': params, 'batch_stats': state.g.batch_stats},
        z,
        train=True,
        mutable=['batch_stats'],
    )[0]
    return jnp.mean(jax.nn.softplus(-(apply_d(fake) - apply_d(real))))

  grads = jax.grad(loss)(state.g.params)
  return float(jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(grads))))


def test_g_samples_choose_the_generator_steps_z_and_reals(g_samples_runs):
  batch, runs = g_samples_runs
  real = step_lib.to_float_images(batch)
  d_real, g_real = real[0::2], real[1::2]
  keys = step_lib.iteration_keys(runs['reuse'][2].rng, 0)
  z_d = step_lib.latents(keys['z'], 8, 8)
  z_g = step_lib.latents(keys['z_g'], 8, 8)
  assert not np.allclose(z_d, z_g)
  # D's update is the same in every mode (same z, same D batch).
  for mode in ('fresh_z', 'fresh_z_and_reals'):
    assert _same(runs[mode][3].d.params, runs['reuse'][3].d.params), mode
  expected = {
      'reuse': (z_d, d_real),
      'fresh_z': (z_g, d_real),
      'fresh_z_and_reals': (z_g, g_real),
  }
  for mode, (z, r) in expected.items():
    g, d, state, new_state, metrics = runs[mode]
    np.testing.assert_allclose(
        metrics['g_grad_norm'],
        _g_grad_norm(g, d, state, new_state, z, r),
        rtol=2e-4,
        err_msg=mode,
    )
  # ... and not the other modes' samples.
  g, d, state, new_state, metrics = runs['fresh_z']
  other = _g_grad_norm(g, d, state, new_state, z_d, d_real)
  assert abs(metrics['g_grad_norm'] - other) > 1e-3 * other


def test_fresh_reals_need_a_loss_that_uses_them():
  with pytest.raises(ValueError, match="train.g_samples='fresh_z_and_reals'"):
    step_lib.check_config(_config(**{'train.g_samples': 'fresh_z_and_reals'}))
  with pytest.raises(ValueError, match="train.g_samples='new'"):
    step_lib.check_config(_config(**{'train.g_samples': 'new'}))
  step_lib.check_config(
      _config(
          **{'loss.name': 'ralsgan', 'train.g_samples': 'fresh_z_and_reals'}
      )
  )


def test_critic_warmup_follows_the_wgan_code():
  """WGAN.py: N_critic = 100 if gen_iterations < 25 or % 500 == 0 else 5."""
  from configs import wgan64  # pylint: disable=g-import-not-at-top

  config = wgan64.get_config()
  g_steps = []
  gen_iterations, step = 0, 0
  while step < 20_000:  # The reference's loop, counting iterations.
    n = 100 if gen_iterations < 25 or gen_iterations % 500 == 0 else 5
    step += n
    g_steps.append(step - 1)
    gen_iterations += 1
  got = [s for s in range(20_000) if step_lib.update_phase(config, s)[1]]
  assert got == [s for s in g_steps if s < 20_000]
  assert got[:2] == [99, 199] and got[25] == 2500 + 4
  assert all(step_lib.update_phase(config, s)[0] for s in range(50))


def test_clip_before_update_computes_with_clipped_weights():
  """'before_update': clamp, then the update (left unclipped for G)."""
  overrides = {'loss.name': 'wgan', 'loss.clip': 0.01, 'optim.d_lr': 0.5}
  before = _config(**overrides, **{'loss.clip_mode': 'before_update'})
  after = _config(**overrides)
  g, d = models.create_models(before)
  state = jax.jit(lambda: state_lib.create_state(before, g, d))()
  assert (
      max(float(jnp.max(jnp.abs(p))) for p in jax.tree.leaves(state.d.params))
      > 0.01
  )
  clipped = state.replace(
      d=state.d.replace(
          params=jax.tree.map(
              lambda p: jnp.clip(p, -0.01, 0.01), state.d.params
          )
      )
  )
  batch = jax.random.randint(
      jax.random.PRNGKey(0), (8, 16, 16, 3), 0, 256
  ).astype(jnp.uint8)
  new_b, m_b = jax.jit(step_lib.make_train_step(before, g, d))(state, batch)
  new_a, m_a = jax.jit(step_lib.make_train_step(after, g, d))(clipped, batch)
  # Same loss: both critics computed with the clipped weights.
  np.testing.assert_allclose(m_b['d_loss'], m_a['d_loss'], rtol=1e-6)
  # The update is not clipped afterwards; clipping it gives 'after_update'.
  assert (
      max(float(jnp.max(jnp.abs(p))) for p in jax.tree.leaves(new_b.d.params))
      > 0.01
  )
  jax.tree.map(
      lambda b, a: np.testing.assert_allclose(
          np.clip(b, -0.01, 0.01), a, rtol=1e-6
      ),
      new_b.d.params,
      new_a.d.params,
  )


def test_r2_differentiates_through_the_fakes_augmentation():
  """R2 is taken w.r.t. the un-augmented fakes, through their own draw."""
  config = _config(
      **{
          'loss.name': 'rsgan',
          'loss.r2_weight': 1.0,
          'model.d_norm': 'none',
          'data.diffaugment': 'translation',
          'data.diffaugment_p': 1.0,
      }
  )
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  batch = jax.random.randint(
      jax.random.PRNGKey(1), (8, 16, 16, 3), 0, 256
  ).astype(jnp.uint8)
  _, metrics = jax.jit(step_lib.make_train_step(config, g, d))(state, batch)

  keys = step_lib.iteration_keys(state.rng, 0)
  op_key = jax.random.split(keys['aug_f'], 2)[0]  # The fakes' draw.
  key_y, key_x = jax.random.split(op_key)
  shift_y = np.asarray(jax.random.randint(key_y, (8,), -2, 3))
  shift_x = np.asarray(jax.random.randint(key_x, (8,), -2, 3))
  translate = lambda x: diffaugment.translation(x, op_key)
  z = step_lib.latents(keys['z'], 8, config.model.z_dim)
  fake = g.apply(
      {'params': state.g.params, 'batch_stats': state.g.batch_stats},
      z,
      train=True,
      mutable=['batch_stats'],
  )[0]
  apply = lambda v: jnp.sum(
      d.apply(
          {'params': state.d.params, 'batch_stats': state.d.batch_stats},
          v,
          train=True,
          mutable=['batch_stats'],
      )[0]
  )
  grad = _untranslate(
      np.asarray(jax.grad(apply)(translate(fake))), shift_y, shift_x
  )
  expected = np.mean(np.sum(np.square(grad), axis=(1, 2, 3)))
  np.testing.assert_allclose(metrics['r2'], expected, rtol=1e-4)
