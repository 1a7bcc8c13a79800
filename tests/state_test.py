"""Optimisers of the GAN state against their reference formulas."""

import jax.numpy as jnp
import ml_collections
import numpy as np

from catgan_jax import state as state_lib


def _torch_rmsprop(params, grads_per_step, lr, alpha=0.99, eps=1e-8):
  """torch.optim.RMSprop's update (defaults: no momentum, not centered)."""
  p, v = params.copy(), np.zeros_like(params)
  for g in grads_per_step:
    v = alpha * v + (1 - alpha) * g * g
    p = p - lr * g / (np.sqrt(v) + eps)
  return p


def test_rmsprop_is_torchs():
  """Gradients of 1e-6 separate eps after sqrt (torch) from eps inside it."""
  optim = ml_collections.ConfigDict(
      {
          'd_name': 'rmsprop',
          'd_lr': 5e-5,
          'd_b1': None,
          'd_b2': None,
          'b1': 0.5,
          'b2': 0.999,
      }
  )
  tx = state_lib.make_optimizer(optim, 'd')
  params = np.array([0.3, -0.2, 0.01, 1.0], np.float64)
  grads = [
      np.array([1e-6, -2e-6, 0.5, -1.0]),
      np.array([3e-6, 1e-6, -0.25, 2.0]),
      np.array([-1e-6, 4e-6, 0.1, 0.0]),
  ]
  p = jnp.asarray(params, jnp.float32)
  opt_state = tx.init(p)
  for g in grads:
    updates, opt_state = tx.update(jnp.asarray(g, jnp.float32), opt_state, p)
    p = p + updates
  expected = _torch_rmsprop(params, grads, lr=5e-5)
  np.testing.assert_allclose(np.asarray(p), expected, rtol=0, atol=2e-7)
  # Hand-computed first step of the 1e-6 gradient: torch moves it by
  # lr * g / (sqrt(0.01 g^2) + eps) = 5e-5 * 1e-6 / (1e-7 + 1e-8) = 4.545e-4;
  # eps inside the sqrt (optax's default) would give 5e-5 * 1e-6 / 1.0e-4
  # = 5e-7, a thousand times less.
  p1 = tx.update(
      jnp.asarray(grads[0], jnp.float32),
      tx.init(jnp.asarray(params, jnp.float32)),
  )[0]
  np.testing.assert_allclose(float(p1[0]), -4.5454545e-4, rtol=1e-5)
