"""Standing BatchNorm statistics of the EMA generator (BigGAN)."""

import jax
import numpy as np
import pytest

import helpers
from catgan_jax import inference
from catgan_jax import metrics_log
from catgan_jax import models
from catgan_jax import state as state_lib
from catgan_jax import train
from tests.fixtures import run_steps


@pytest.fixture(scope='module')
def setup():
  config = helpers.config_with(
      **{'train.ema_decay': 0.9, 'eval.standing_stats_batches': 3}
  )
  generator, discriminator = models.create_models(config)
  state = state_lib.create_state(config, generator, discriminator)
  # An EMA that differs from the live weights, as after some training.
  ema = jax.tree.map(lambda p: p * 1.5, state.ema_params)
  return config, generator, state.replace(ema_params=ema)


def test_one_batch_gives_that_batch_its_own_statistics(setup):
  # With one batch, eval mode on that batch equals training mode on it.
  config, generator, state = setup
  key = jax.random.PRNGKey(7)
  stats = inference.standing_batch_stats(
      generator,
      state.ema_params,
      state.g.batch_stats,
      key,
      1,
      config.batch_size,
      config.model.z_dim,
  )
  z = jax.random.normal(
      jax.random.split(key, 1)[0], (config.batch_size, config.model.z_dim)
  )
  variables = {'params': state.ema_params}
  train_mode, _ = generator.apply(
      {**variables, 'batch_stats': state.g.batch_stats},
      z,
      train=True,
      mutable=['batch_stats'],
  )
  eval_mode = generator.apply(
      {**variables, 'batch_stats': stats}, z, train=False
  )
  np.testing.assert_allclose(eval_mode, train_mode, atol=2e-5)
  # The live statistics (initial: mean 0, var 1) give another image.
  live = generator.apply(
      {**variables, 'batch_stats': state.g.batch_stats}, z, train=False
  )
  assert np.max(np.abs(live - train_mode)) > 1e-2


def test_standing_stats_change_the_sample_and_not_the_state(setup):
  config, generator, state = setup
  before = jax.tree.map(np.array, state)
  sampling = jax.jit(inference.make_sampling_state_fn(generator, config))(state)
  sample = jax.jit(inference.make_sample_fn(generator))
  z = jax.random.normal(jax.random.PRNGKey(1), (8, config.model.z_dim))
  assert np.max(np.abs(sample(sampling, z) - sample(state, z))) > 1e-2
  jax.tree.map(np.testing.assert_array_equal, before, state)
  # Only G's statistics differ.
  jax.tree.map(
      np.testing.assert_array_equal, sampling.ema_params, state.ema_params
  )


def test_off_without_ema_or_batches(setup):
  config, generator, state = setup
  for overrides in (
      {'train.ema_decay': 0.0},
      {'eval.standing_stats_batches': 0},
  ):
    off = helpers.override(config.copy_and_resolve_references(), **overrides)
    assert inference.make_sampling_state_fn(generator, off)(state) is state


def test_training_is_the_same_with_and_without_standing_stats(tmp_path):
  # Samples (and scores) use the standing statistics; the trained state and
  # the logged losses do not change.
  finals, records = {}, {}
  for batches in (0, 2):
    workdir = str(tmp_path / f'standing{batches}')
    config = helpers.config_with(
        **{
            'train.ema_decay': 0.5,
            'eval.standing_stats_batches': batches,
        }
    )
    finals[batches] = run_steps.flat_params(
        train.train_and_evaluate(config, workdir)
    )
    records[batches] = metrics_log.MetricsLog(workdir).read()
  assert finals[0].keys() == finals[2].keys()
  for name, value in finals[0].items():
    np.testing.assert_array_equal(value, finals[2][name], err_msg=name)
  for r0, r2 in zip(records[0], records[2]):
    assert r0['d_loss'] == r2['d_loss'] and r0['g_loss'] == r2['g_loss']
  std = lambda rs: [r['sample_std'] for r in rs if 'sample_std' in r]
  assert std(records[0]) != std(records[2])
