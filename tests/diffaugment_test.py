"""Tests of DiffAugment: identity at p=0, differentiable, each op does what it says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import diffaugment

POLICY = 'color,translation,cutout'


def _images(n=8, size=16, seed=0):
  return jax.random.uniform(
      jax.random.key(seed), (n, size, size, 3), minval=-1, maxval=1
  )


def test_identity_at_zero_probability():
  x = _images()
  key = jax.random.key(1)
  np.testing.assert_array_equal(
      diffaugment.diff_augment(x, key, POLICY, 0.0), x
  )
  # A traced p (adaptive augmentation) of 0 is the identity too.
  jitted = jax.jit(lambda x, p: diffaugment.diff_augment(x, key, POLICY, p))
  np.testing.assert_array_equal(jitted(x, jnp.float32(0.0)), x)
  np.testing.assert_array_equal(diffaugment.diff_augment(x, key, '', 1.0), x)


def test_shape_dtype_determinism_and_change():
  x = _images()
  y = diffaugment.diff_augment(x, jax.random.key(2), POLICY, 1.0)
  assert y.shape == x.shape and y.dtype == x.dtype
  np.testing.assert_array_equal(
      y, diffaugment.diff_augment(x, jax.random.key(2), POLICY)
  )
  assert not np.allclose(y, x)
  assert not np.allclose(
      y, diffaugment.diff_augment(x, jax.random.key(3), POLICY)
  )


def test_gradients_are_finite_and_nonzero():
  x = _images()

  def loss(x, p):
    return jnp.sum(
        diffaugment.diff_augment(x, jax.random.key(4), POLICY, p) ** 2
    )

  for p in (1.0, jnp.float32(0.5)):
    grad = jax.jit(jax.grad(loss))(x, p)
    assert grad.shape == x.shape
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_probability_applies_per_image():
  x = _images(n=64)
  y = diffaugment.diff_augment(x, jax.random.key(5), 'translation', 0.5)
  changed = np.abs(np.asarray(y - x)).reshape(64, -1).max(-1) > 0
  # Shift 0 in both axes (1 in 25) also leaves an image unchanged, so expect ~0.48.
  assert 16 < changed.sum() < 48


def test_translation_is_a_zero_filled_shift():
  x = jnp.arange(16 * 16, dtype=jnp.float32).reshape(1, 16, 16, 1) + 1.0
  for seed in range(5):
    y = np.asarray(diffaugment.translation(x, jax.random.key(seed)))[0, :, :, 0]
    # Shifts are at most int(16 * 0.125 + 0.5) = 2 pixels. The shift is read off
    # the first non-zero pixel; the rest must be the same shifted copy.
    source = np.asarray(x)[0, :, :, 0]
    found = False
    for dy in range(-2, 3):
      for dx in range(-2, 3):
        padded = np.pad(source, 2)
        if np.array_equal(y, padded[2 + dy : 18 + dy, 2 + dx : 18 + dx]):
          found = True
    assert found


def test_cutout_zeroes_a_square_of_half_the_side():
  x = jnp.ones((32, 16, 16, 3))
  y = np.asarray(diffaugment.cutout(x, jax.random.key(6)))
  zeros = (y[..., 0] == 0).reshape(32, -1).sum(-1)
  # Half of 16 is an 8x8 square = 64 pixels, fewer when it hangs over the border.
  assert zeros.max() == 64 and zeros.min() > 0 and (zeros <= 64).all()
  assert set(np.unique(y)) <= {0.0, 1.0}


def test_color_changes_brightness_within_range():
  x = jnp.zeros((64, 4, 4, 3))
  y = np.asarray(diffaugment.brightness(x, jax.random.key(7)))
  offsets = y[:, 0, 0, 0]
  assert (
      (offsets >= -0.5).all() and (offsets < 0.5).all() and offsets.std() > 0.2
  )
  # Saturation and contrast keep a grey constant image unchanged.
  grey = jnp.full((4, 4, 4, 3), 0.3)
  np.testing.assert_allclose(
      diffaugment.saturation(grey, jax.random.key(8)), grey, atol=1e-6
  )
  np.testing.assert_allclose(
      diffaugment.contrast(grey, jax.random.key(9)), grey, atol=1e-6
  )


def test_unknown_policy_is_an_error():
  with pytest.raises(ValueError, match="unknown policy 'colour'"):
    diffaugment.diff_augment(_images(), jax.random.key(0), 'colour,cutout', 1.0)


@pytest.mark.parametrize(
    'sign, start, expected',
    [
        # r_t = 1 > target: +64 * 4 / 500k per interval; 10 steps -> 2 intervals.
        (1.0, 0.0, 2 * 64 * 4 / 500_000),
        # r_t = -1 < target: clamped at 0 from the first adjustment on.
        (-1.0, 0.0, 0.0),
        (-1.0, 0.5, 0.5 - 2 * 64 * 4 / 500_000),
        # Clamped at 1 too.
        (1.0, 0.9999, 1.0),
    ],
)
def test_ada_matches_stylegan2_ada_closed_form(sign, start, expected):
  """With a constant r_t, p after N steps is p0 + (N // 4) * sign * B*4/500k."""
  update = jax.jit(
      lambda p, stats, step, logits: diffaugment.ada_update(
          p, stats, step, logits, target=0.6, interval=4, kimg=500
      )
  )
  p, stats = jnp.float32(start), jnp.zeros((2,), jnp.float32)
  logits = jnp.full((64,), sign * 3.0)
  history = []
  for step in range(10):
    p, stats = update(p, stats, jnp.int32(step), logits)
    history.append(float(p))
  np.testing.assert_allclose(history[-1], expected, rtol=1e-6, atol=1e-9)
  # p only moves after iterations 3 and 7 (every 4th, as batch_idx % 4 == 0
  # after the increment in stylegan2-ada's loop).
  before = [float(jnp.float32(start))] + history[:-1]
  changes = [i for i in range(10) if history[i] != before[i]]
  assert set(changes) <= {3, 7}
  # Stats hold the two iterations since the last adjustment.
  np.testing.assert_allclose(stats, [2 * 64 * sign, 2 * 64])


def test_ada_uses_the_mean_sign_over_the_interval():
  """r_t averages all logits of the interval, not only the last batch."""
  p, stats = jnp.float32(0.5), jnp.zeros((2,), jnp.float32)
  # Three batches all positive, the last one all negative: r_t = 0.5 < 0.6.
  for step, s in enumerate([1.0, 1.0, 1.0, -1.0]):
    p, stats = diffaugment.ada_update(
        p, stats, jnp.int32(step), jnp.full((8,), s), 0.6, 4, 500
    )
  np.testing.assert_allclose(float(p), 0.5 - 8 * 4 / 500_000, rtol=1e-6)
