"""Logged training scalars: means over each logging interval."""

import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from catgan_jax import metrics_log
from catgan_jax import train


def test_interval_means_average_the_steps_since_the_last_result():
  means = metrics_log.IntervalMeans()
  for loss, finite in [(1.0, True), (2.0, True), (6.0, False)]:
    means.update({'d_loss': jnp.float32(loss), 'finite': jnp.bool_(finite)})
  assert means.result() == {'d_loss': pytest.approx(3.0)}
  means.update({'d_loss': jnp.float32(5.0), 'aug_p': jnp.float32(0.5)})
  assert means.result() == {'d_loss': 5.0, 'aug_p': 0.5}
  means.update({'d_loss': jnp.float32(5.0)})
  means.reset()
  assert not means.result()


def test_logged_losses_are_interval_means(tmp_path):
  # The same 4 steps logged every step and every 2 steps: the second run
  # logs the mean of each pair of the first's values.
  runs = {}
  for every in (1, 2):
    workdir = str(tmp_path / f'every{every}')
    config = helpers.config_with(log_every_steps=every, sample_every_steps=4)
    train.train_and_evaluate(config, workdir)
    runs[every] = {r['step']: r for r in metrics_log.MetricsLog(workdir).read()}
  assert sorted(runs[2]) == [2, 4]
  for name in ('d_loss', 'g_loss', 'D_x', 'd_grad_norm'):
    for step in (2, 4):
      pair = [runs[1][step - 1][name], runs[1][step][name]]
      np.testing.assert_allclose(runs[2][step][name], np.mean(pair), rtol=1e-5)
    assert runs[1][1][name] != runs[1][2][name]  # Not a trivial mean.
