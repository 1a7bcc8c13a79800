"""Tests of catgan_jax.losses: hand-computed values, penalties, registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import losses
from configs import default

# Shared logits: real = [2, -1], fake = [0.5, -3]; mean(real) = 0.5,
# mean(fake) = -1.25. BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x), and
# BCE(x, t) = softplus(x) - t * x. Softplus values used below (6 digits):
#   sp(-3.5) = 0.029750   sp(-3.25) = 0.038041   sp(-3) = 0.048587
#   sp(-2) = 0.126928     sp(-1.5) = 0.201413    sp(-1) = 0.313262
#   sp(-0.5) = 0.474077   sp(-0.25) = 0.575939   sp(0) = 0.693147
#   sp(0.25) = 0.825939   sp(0.5) = 0.974077     sp(1) = 1.313262
#   sp(1.5) = 1.701413    sp(2) = 2.126928       sp(3) = 3.048587
#   sp(3.25) = 3.288041   sp(3.5) = 3.529750
# Relativistic-average differences:
#   r~ = real - mean(fake) = [3.25, 0.25],  f~ = fake - mean(real) = [0, -3.5].
REAL = jnp.array([2.0, -1.0])
FAKE = jnp.array([0.5, -3.0])

# (name, expected D loss, expected G loss) with the default loss config.
EXPECTED = [
    # D: mean(sp(-2), sp(1)) + mean(sp(0.5), sp(-3)) = 0.720095 + 0.511332.
    # G: mean(sp(-0.5), sp(3)).
    ('nsgan', 1.231427, 1.761332),
    # G: -mean(sp(0.5), sp(-3)) = mean(log(1 - sigmoid(fake))).
    ('minimax', 1.231427, -0.511332),
    # a=0, b=1, c=1. D: 0.5 * mean(1, 4) + 0.5 * mean(0.25, 9) = 1.25 + 2.3125.
    # G: 0.5 * mean(0.5^2, 4^2) = 0.5 * 8.125.
    ('lsgan', 3.5625, 4.0625),
    # D: mean(fake) - mean(real) = -1.25 - 0.5. G: -mean(fake).
    ('wgan', -1.75, 1.25),
    ('wgan_gp', -1.75, 1.25),
    # D: mean(relu(-1), relu(2)) + mean(relu(1.5), relu(-2)) = 1 + 0.75.
    ('hinge', 1.75, 1.25),
    # Margins m ~ U(0.8, 1) per logit: D = mean(relu(m - 2), relu(m + 1)) +
    # mean(relu(m + 0.5), relu(m - 3)) = (m1 + 1) / 2 + (m2 + 0.5) / 2, in
    # [1.55, 1.75) (tests/fastgan_test.py checks the draws). G: -mean(fake).
    ('hinge_random_margin', (1.55, 1.75), 1.25),
    # real - fake = [1.5, 2]. D: mean(sp(-1.5), sp(-2)).
    # G: BCE(fake - real, 1) = mean(sp(1.5), sp(2)).
    ('rsgan', 0.164171, 1.914171),
    # D: (mean(sp(-3.25), sp(-0.25)) + mean(sp(0), sp(-3.5))) / 2
    #    = (0.306990 + 0.361449) / 2.
    # G: (mean(sp(0), sp(3.5)) + mean(sp(3.25), sp(0.25))) / 2
    #    = (2.111449 + 2.056990) / 2.
    ('rasgan', 0.334220, 2.084220),
    # D: (mean((r~ - 1)^2) + mean((f~ + 1)^2)) / 2
    #    = (mean(5.0625, 0.5625) + mean(1, 6.25)) / 2 = (2.8125 + 3.625) / 2.
    # G: (mean((f~ - 1)^2) + mean((r~ + 1)^2)) / 2
    #    = (mean(1, 20.25) + mean(18.0625, 1.5625)) / 2 = (10.625 + 9.8125) / 2.
    ('ralsgan', 3.21875, 10.21875),
    # D: (mean(relu(1 - r~)) + mean(relu(1 + f~))) / 2
    #    = (mean(0, 0.75) + mean(1, 0)) / 2.
    # G: (mean(relu(1 - f~)) + mean(relu(1 + r~))) / 2
    #    = (mean(1, 4.5) + mean(4.25, 1.25)) / 2.
    ('rahinge', 0.4375, 2.75),
]


def _cfg(**overrides):
  cfg = default.get_config().loss
  cfg.update(overrides)
  return cfg


@pytest.mark.parametrize('name,d_expected,g_expected', EXPECTED)
def test_hand_values(name, d_expected, g_expected):
  loss = losses.get_loss(name)
  cfg = _cfg()
  real_for_g = REAL if loss.g_uses_real else None
  if loss.d_uses_key:
    lo, hi = d_expected
    values = {
        float(loss.d_value(REAL, FAKE, cfg, jax.random.key(i)))
        for i in range(8)
    }
    assert all(lo <= v < hi for v in values) and len(values) > 1, values
  else:
    np.testing.assert_allclose(
        loss.d_loss(REAL, FAKE, cfg), d_expected, rtol=2e-6, atol=2e-6
    )
  np.testing.assert_allclose(
      loss.g_loss(real_for_g, FAKE, cfg), g_expected, rtol=2e-6, atol=2e-6
  )


def test_every_loss_has_a_hand_value():
  assert sorted(name for name, _, _ in EXPECTED) == sorted(losses.LOSSES)


def test_only_relativistic_g_losses_use_real():
  uses_real = {n for n, l in losses.LOSSES.items() if l.g_uses_real}
  assert uses_real == {'rsgan', 'rasgan', 'ralsgan', 'rahinge'}


@pytest.mark.parametrize('name', ['rsgan', 'rasgan', 'ralsgan', 'rahinge'])
def test_relativistic_g_loss_without_real_logits_is_an_error(name):
  with pytest.raises(ValueError, match='needs the real logits'):
    losses.get_loss(name).g_loss(None, FAKE, _cfg())


def test_rsgan_refuses_unpaired_batches():
  with pytest.raises(ValueError, match='pairs'):
    losses.get_loss('rsgan').d_loss(REAL, jnp.zeros(3), _cfg())


def test_label_smoothing_nsgan():
  # real_label = 0.9, fake_label = 0.1; BCE(x, t) = sp(x) - t * x.
  # Real: mean(sp(2) - 1.8, sp(-1) + 0.9) = mean(0.326928, 1.213262) = 0.770095.
  # Fake: mean(sp(0.5) - 0.05, sp(-3) + 0.3) = mean(0.924077, 0.348587)
  #     = 0.636332. Sum = 1.406427.
  cfg = _cfg(real_label=0.9, fake_label=0.1)
  loss = losses.get_loss('nsgan')
  np.testing.assert_allclose(loss.d_loss(REAL, FAKE, cfg), 1.406427, rtol=2e-6)
  # The generator keeps its hard target.
  np.testing.assert_allclose(loss.g_loss(None, FAKE, cfg), 1.761332, rtol=2e-6)


def test_label_smoothing_rsgan():
  # real - fake = [1.5, 2]; BCE(x, 0.9) = sp(x) - 0.9 x.
  # mean(sp(1.5) - 1.35, sp(2) - 1.8) = mean(0.351413, 0.326928) = 0.339171.
  cfg = _cfg(real_label=0.9)
  np.testing.assert_allclose(
      losses.get_loss('rsgan').d_loss(REAL, FAKE, cfg), 0.339171, rtol=2e-6
  )


def test_lsgan_boundary_seeking_c():
  # c = 0.5: G = 0.5 * mean((0.5 - 0.5)^2, (-3 - 0.5)^2) = 0.5 * 6.125.
  cfg = _cfg(c=0.5)
  np.testing.assert_allclose(
      losses.get_loss('lsgan').g_loss(None, FAKE, cfg), 3.0625, rtol=1e-6
  )


def test_lsgan_symmetric_targets():
  # a = -1, b = 1. D = 0.5 * mean(1, 4) + 0.5 * mean(1.5^2, 2^2)
  #                 = 1.25 + 0.5 * 3.125 = 2.8125.
  cfg = _cfg(a=-1.0, b=1.0, c=0.0)
  np.testing.assert_allclose(
      losses.get_loss('lsgan').d_loss(REAL, FAKE, cfg), 2.8125, rtol=1e-6
  )


def test_minimax_g_is_log_one_minus_d():
  expected = jnp.mean(jnp.log(1.0 - jax.nn.sigmoid(FAKE)))
  np.testing.assert_allclose(
      losses.get_loss('minimax').g_loss(None, FAKE, _cfg()), expected, rtol=1e-6
  )


def test_bce_losses_are_stable_for_huge_logits():
  real, fake = jnp.array([200.0, -200.0]), jnp.array([-200.0, 200.0])
  for name in ('nsgan', 'minimax', 'rsgan', 'rasgan'):
    loss = losses.get_loss(name)
    assert np.isfinite(loss.d_loss(real, fake, _cfg()))
    assert np.isfinite(loss.g_loss(real, fake, _cfg()))
  # D is certain and wrong on one sample of each: softplus(200) = 200 each.
  np.testing.assert_allclose(
      losses.get_loss('nsgan').d_loss(real, fake, _cfg()), 200.0, rtol=1e-6
  )


@pytest.mark.parametrize('name', sorted(losses.LOSSES))
def test_finite_scalar_and_differentiable(name):
  loss = losses.get_loss(name)
  cfg = _cfg()
  real = jnp.array([0.3, -1.2, 2.5, 0.0])
  fake = jnp.array([-0.7, 1.1, -2.0, 0.4])

  key = jax.random.key(0)  # For a loss that draws (d_uses_key).

  def total(r, f):
    return loss.d_value(r, f, cfg, key) + loss.g_loss(
        r if loss.g_uses_real else None, f, cfg
    )

  value, grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))(real, fake)
  assert value.shape == () and value.dtype == jnp.float32
  assert np.isfinite(value)
  for g in grads:
    assert g.shape == (4,)
    assert np.all(np.isfinite(g))
  # The D loss depends on both sets of logits.
  d_grads = jax.grad(loss.d_value, argnums=(0, 1))(real, fake, cfg, key)
  assert all(np.any(g != 0) for g in d_grads)


def test_bfloat16_logits_give_float32_losses():
  loss = losses.get_loss('nsgan')
  value = loss.d_loss(
      REAL.astype(jnp.bfloat16), FAKE.astype(jnp.bfloat16), _cfg()
  )
  assert value.dtype == jnp.float32
  # The logits are exact in bfloat16, so the value is the f32 one.
  np.testing.assert_allclose(value, 1.231427, rtol=1e-5)


def test_get_loss_unknown_lists_the_names():
  with pytest.raises(ValueError) as err:
    losses.get_loss('nope')
  message = str(err.value)
  assert "loss.name='nope' is unknown" in message
  assert 'valid: hinge, hinge_random_margin, lsgan, minimax' in message
  for name in losses.LOSSES:
    assert name in message


def test_default_config_loss_is_registered():
  assert default.get_config().loss.name in losses.LOSSES


# --- Penalties ----------------------------------------------------------------

_SHAPE = (5, 4, 4, 3)


def _linear_critic(w):
  # D(x) = sum(w * x) per sample; grad_x D = w for every x.
  return lambda x: jnp.sum(w * x, axis=(1, 2, 3))


def _unit_weights(key):
  w = jax.random.normal(key, _SHAPE[1:])
  return w / jnp.linalg.norm(w)


def _images(seed):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return (
      jax.random.uniform(k1, _SHAPE, minval=-1, maxval=1),
      jax.random.uniform(k2, _SHAPE, minval=-1, maxval=1),
  )


@pytest.mark.parametrize('seed', [0, 1])
def test_gradient_penalty_of_linear_critic(seed):
  # ||grad|| = ||w|| = 3 at every interpolate: (3 - 1)^2 = 4.
  w = 3.0 * _unit_weights(jax.random.key(10 + seed))
  real, fake = _images(seed)
  key = jax.random.key(100 + seed)
  gp = losses.gradient_penalty(_linear_critic(w), real, fake, key)
  np.testing.assert_allclose(gp, 4.0, rtol=1e-5)
  # target = 0 penalises the squared norm: 9; target = 3: 0.
  np.testing.assert_allclose(
      losses.gradient_penalty(_linear_critic(w), real, fake, key, target=0.0),
      9.0,
      rtol=1e-5,
  )
  np.testing.assert_allclose(
      losses.gradient_penalty(_linear_critic(w), real, fake, key, target=3.0),
      0.0,
      atol=1e-5,
  )


def test_gradient_penalty_interpolates_per_sample_uniformly():
  # Critic 0.5 * ||x||^2 has grad x. With real = 0 and fake = 1 everywhere,
  # x_hat_i = (1 - eps_i) * 1, so with target 0 the penalty is
  # mean_i (1 - eps_i)^2 * N, N = 4*4*3 = 48. For eps_i ~ U[0, 1] independently
  # per sample, E (1 - eps)^2 = 1/3, sd of the mean over 2000 samples ~ 0.0067.
  shape = (2000, 4, 4, 3)
  real, fake = jnp.zeros(shape), jnp.ones(shape)
  critic = lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3))
  gp = losses.gradient_penalty(
      critic, real, fake, jax.random.key(0), target=0.0
  )
  np.testing.assert_allclose(gp / 48.0, 1.0 / 3.0, atol=0.03)
  # A different key draws different interpolates.
  gp2 = losses.gradient_penalty(
      critic, real, fake, jax.random.key(1), target=0.0
  )
  assert gp != gp2


def test_gradient_penalty_gradient_is_finite_at_zero_critic_gradient():
  # A critic with zero weights has zero input gradient; d||g||/dg must not be
  # NaN there. Penalty (||w|| - 1)^2 = 1 at w = 0.
  real, fake = _images(0)

  def penalty(w):
    return losses.gradient_penalty(
        _linear_critic(w), real, fake, jax.random.key(0)
    )

  value, grad = jax.value_and_grad(penalty)(jnp.zeros(_SHAPE[1:]))
  np.testing.assert_allclose(value, 1.0, rtol=1e-5)
  assert np.all(np.isfinite(grad))


def test_gradient_penalty_gradient_wrt_critic_params():
  # Penalty (||w|| - 1)^2 has gradient 2 (||w|| - 1) w / ||w|| = 2 * 2 * u
  # for w = 3u, ||u|| = 1.
  u = _unit_weights(jax.random.key(3))
  real, fake = _images(0)
  grad = jax.grad(
      lambda w: losses.gradient_penalty(
          _linear_critic(w), real, fake, jax.random.key(0)
      )
  )(3.0 * u)
  np.testing.assert_allclose(grad, 4.0 * u, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_gradient_exact_at_tiny_critic_gradient():
  # At ||w|| = 1e-5 (a narrow critic's input gradients at initialisation are
  # of that order) the gradient is still 2 (||w|| - 1) w / ||w||: no epsilon
  # under the norm's root shifts it (1e-12 would, by 1e-12 / (2 ||w||^2) =
  # 0.5%).
  u = _unit_weights(jax.random.key(3))
  real, fake = _images(0)
  grad = jax.grad(
      lambda w: losses.gradient_penalty(
          _linear_critic(w), real, fake, jax.random.key(0)
      )
  )(1e-5 * u)
  np.testing.assert_allclose(grad, 2.0 * (1e-5 - 1.0) * u, rtol=1e-5)


def test_r1_penalty_of_linear_critic():
  # ||grad||^2 = ||w||^2 = 9 for every real image.
  w = 3.0 * _unit_weights(jax.random.key(4))
  real, _ = _images(0)
  np.testing.assert_allclose(
      losses.r1_penalty(_linear_critic(w), real), 9.0, rtol=1e-5
  )


def test_r1_penalty_of_quadratic_critic():
  # Critic 0.5 * ||x||^2 has grad x: R1 = mean_i ||x_i||^2. Two images, one all
  # 1 (||x||^2 = 48) and one all 0.5 (||x||^2 = 12): R1 = 30.
  real = jnp.stack([jnp.ones((4, 4, 3)), jnp.full((4, 4, 3), 0.5)])
  critic = lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3))
  np.testing.assert_allclose(losses.r1_penalty(critic, real), 30.0, rtol=1e-6)


# --- Metrics ------------------------------------------------------------------


def test_d_accuracy():
  # real > 0: 2, 3, 0.5 (0 is not > 0) -> 3/5. fake < 0: -3, -0.1 -> 2/4.
  real = jnp.array([2.0, -1.0, 3.0, 0.5, 0.0])
  fake = jnp.array([0.5, -3.0, 1.0, -0.1])
  real_acc, fake_acc = losses.d_accuracy(real, fake)
  np.testing.assert_allclose(real_acc, 0.6, rtol=1e-6)
  np.testing.assert_allclose(fake_acc, 0.5, rtol=1e-6)
  assert real_acc.dtype == jnp.float32 and fake_acc.dtype == jnp.float32
