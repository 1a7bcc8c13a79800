"""ADA's augmentation pipeline: each op by hand, p, gradients, config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from catgan_jax import ada
from catgan_jax import config_lib
from catgan_jax import models
from catgan_jax import state as state_lib
from catgan_jax import step as step_lib

N, S = 8, 16


def _images(seed=0, n=N):
  return jax.random.uniform(
      jax.random.PRNGKey(seed), (n, S, S, 3), minval=-1.0, maxval=1.0
  )


def _smooth(n=2):
  """Band-limited images (well inside the sym6 filter's pass band)."""
  yy, xx = np.meshgrid(np.arange(S), np.arange(S), indexing='ij')
  img = np.stack(
      [
          np.cos(2 * np.pi * xx / S * 0.6 + 0.4)
          * np.sin(2 * np.pi * yy / S * 0.4 + 0.1),
          np.cos(2 * np.pi * (xx + 2 * yy) / S * 0.3),
          0.3 * np.ones((S, S)),
      ],
      -1,
  )
  return jnp.asarray(np.stack([img, img[::-1]][:n]), jnp.float32)


GEOMETRIC = ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac')
COLOUR = ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')


def test_the_presets_are_the_references():
  bgc = ada.PIPES['bgc']
  for op in GEOMETRIC + COLOUR:
    assert getattr(bgc, op) == 1.0, op
  assert bgc.imgfilter == bgc.noise == bgc.cutout == 0.0
  bgcfnc = ada.PIPES['bgcfnc']
  assert bgcfnc.imgfilter == bgcfnc.noise == bgcfnc.cutout == 1.0
  r3gan = ada.PIPES['r3gan']  # R3GAN's train.py.
  assert [getattr(r3gan, op) for op in GEOMETRIC] == [1.0] * 7
  assert [getattr(r3gan, op) for op in COLOUR] == [0.5] * 5
  assert r3gan.cutout == 1.0 and r3gan.imgfilter == r3gan.noise == 0.0
  # The default strengths of stylegan2-ada's AugmentPipe.
  assert (bgc.xint_max, bgc.scale_std, bgc.rotate_max, bgc.aniso_std) == (
      0.125,
      0.2,
      1.0,
      0.2,
  )
  assert (bgc.xfrac_std, bgc.brightness_std, bgc.contrast_std) == (
      0.125,
      0.2,
      0.5,
  )
  assert (bgc.hue_max, bgc.saturation_std, bgc.imgfilter_std) == (1, 1, 1)
  assert (bgc.noise_std, bgc.cutout_size) == (0.1, 0.5)


def test_the_filters():
  # setup_filter normalises to unit DC gain; the bank's bands add up to the
  # identity (all band gains 1 = no filtering).
  np.testing.assert_allclose(ada.HZ_GEOM.sum(), 1.0, rtol=1e-6)
  total = ada.HZ_FBANK.sum(axis=0)
  impulse = np.zeros_like(total)
  impulse[total.size // 2] = 1.0
  np.testing.assert_allclose(total, impulse, atol=1e-6)


@pytest.mark.parametrize('name', ['bgc', 'bgcfnc', 'r3gan'])
def test_p_zero_is_the_identity(name):
  x = _images()
  pipe = ada.get_pipe(name)
  assert ada.augment(x, jax.random.PRNGKey(1), 0.0, pipe) is x
  # A traced p = 0: every op at its identity, the geometric path through
  # the sym6 up/down resampling, which reconstructs perfectly.
  y = jax.jit(lambda x, p: ada.augment(x, jax.random.PRNGKey(1), p, pipe))(
      x, jnp.float32(0.0)
  )
  np.testing.assert_allclose(y, x, atol=2e-5)


@pytest.mark.parametrize('op', GEOMETRIC)
def test_p_one_applies_each_geometric_op(op):
  pipe = ada.Pipe(**{op: 1.0})
  key = jax.random.PRNGKey(2)
  eye = np.eye(3, dtype=np.float32)
  off = ada.geometric_matrix(key, 64, S, S, 0.0, pipe)
  np.testing.assert_array_equal(off, np.broadcast_to(eye, off.shape))
  on = np.asarray(ada.geometric_matrix(key, 64, S, S, 1.0, pipe))
  changed = ~np.all(np.isclose(on, eye, atol=1e-6), axis=(1, 2))
  # x-flip draws flip/no flip, rotate90 one of four, xint a shift in
  # [-2, 2] pixels at 16 px: the identity only where the draw is.
  expected = {'xflip': 0.5, 'rotate90': 0.75, 'xint': 0.96}.get(op, 1.0)
  assert abs(changed.mean() - expected) < 0.2, (op, changed.mean())


def test_blit_matrices_are_exact_permutations():
  key = jax.random.PRNGKey(3)
  flips = np.asarray(
      ada.geometric_matrix(key, 32, S, S, 1.0, ada.PIPES['blit'])
  )
  # xflip, rotate90 and integer translation: entries are integers (up to
  # cos(pi / 2) in float32), translations whole pixels.
  np.testing.assert_allclose(flips, np.round(flips), atol=1e-6)
  assert np.all(np.abs(flips[:, :2, 2]) <= round(0.125 * S))


def test_integer_translation_is_exact_with_reflected_border():
  x = _images()
  y = ada.apply_geometric(x, ada.translate2d(jnp.full((N,), 2.0), 0.0))
  # Output pixel j reads input pixel j + 2; beyond the border, reflected.
  np.testing.assert_allclose(y[:, :, :-2], x[:, :, 2:], atol=2e-5)
  np.testing.assert_allclose(y[:, :, -2:], x[:, :, [-2, -3]], atol=2e-5)


@pytest.mark.parametrize(
    'matrix, expected, atol',
    [
        (
            lambda n: ada.scale2d(-jnp.ones(n), 1.0),
            lambda x: x[:, :, ::-1],
            0.03,
        ),
        (
            lambda n: ada.rotate2d(jnp.full((n,), np.pi / 2)),
            lambda x: jnp.rot90(x, 1, axes=(1, 2)),
            0.03,
        ),
        # Both axes flipped: twice the one-axis deviation.
        (
            lambda n: ada.rotate2d(jnp.full((n,), np.pi)),
            lambda x: x[:, ::-1, ::-1],
            0.06,
        ),
    ],
    ids=['xflip', 'rotate90', 'rotate180'],
)
def test_flips_and_quarter_turns(matrix, expected, atol):
  """The pipeline's x-flip and 90-degree rotations move every pixel where a
  flip or rot90 does. They pass through the sym6 resampling, which is the
  identity for an unflipped axis (sym6 is orthogonal: up then down is its
  autocorrelation) but, sym6 being only nearly symmetric, low-pass filters
  a flipped one slightly (a shift of about a tenth of a pixel), as in the
  reference: a band-limited image comes back within 3%."""
  x = _smooth()
  y = ada.apply_geometric(x, matrix(x.shape[0]))
  np.testing.assert_allclose(y, expected(x), atol=atol)
  # The identity transform is exact on any image.
  noise = _images()
  same = ada.apply_geometric(noise, ada.scale2d(jnp.ones(N), 1.0))
  np.testing.assert_allclose(same, noise, atol=2e-5)


def test_arbitrary_rotation_keeps_a_constant_image():
  x = jnp.full((N, S, S, 3), 0.25)
  g = ada.geometric_matrix(
      jax.random.PRNGKey(4), N, S, S, 1.0, ada.Pipe(rotate=1.0, xfrac=1.0)
  )
  np.testing.assert_allclose(ada.apply_geometric(x, g), x, atol=1e-4)


def _colour(op, p=1.0, seed=5, n=N):
  return ada.colour_matrix(jax.random.PRNGKey(seed), n, p, ada.Pipe(**{op: 1}))


def test_brightness_adds_a_constant_per_image():
  x = _images()
  c = _colour('brightness')
  diff = np.asarray(ada.apply_colour(x, c) - x)
  b = np.asarray(c[:, 0, 3])
  np.testing.assert_allclose(
      diff, np.broadcast_to(b[:, None, None, None], diff.shape), atol=1e-6
  )
  assert np.all(b != 0) and len(set(b.tolist())) == N


def test_contrast_scales_about_zero():
  x = _images()
  c = _colour('contrast')
  s = np.asarray(c[:, 0, 0])
  y = ada.apply_colour(x, c)
  np.testing.assert_allclose(y, x * s[:, None, None, None], atol=1e-6)
  assert np.all(s != 1)


def test_lumaflip_reflects_the_luma_axis():
  x = _images()
  y = np.asarray(ada.apply_colour(x, _colour('lumaflip', n=N)))
  flipped = np.asarray(x - 2 * jnp.mean(x, -1, keepdims=True))
  is_flip = [np.allclose(y[i], flipped[i], atol=1e-5) for i in range(N)]
  is_same = [np.allclose(y[i], x[i], atol=1e-5) for i in range(N)]
  assert all(a or b for a, b in zip(is_flip, is_same))
  assert any(is_flip) and any(is_same)


def test_hue_rotates_about_luma_and_saturation_scales_chroma():
  x = _images()
  mean = jnp.mean(x, -1, keepdims=True)
  hue = ada.apply_colour(x, _colour('hue'))
  np.testing.assert_allclose(jnp.mean(hue, -1, keepdims=True), mean, atol=1e-5)
  np.testing.assert_allclose(
      jnp.linalg.norm(hue - mean, axis=-1),
      jnp.linalg.norm(x - mean, axis=-1),
      atol=1e-5,
  )
  assert not np.allclose(hue, x, atol=1e-3)
  c = _colour('saturation')
  s = np.asarray(c[:, 0, 0] * 1.5 - 0.5)  # diag = 1/3 + 2/3 s.
  sat = ada.apply_colour(x, c)
  np.testing.assert_allclose(
      sat, mean + (x - mean) * s[:, None, None, None], atol=1e-5
  )


def test_image_filter_keeps_a_constant_image_constant():
  gains = ada.filter_gains(jax.random.PRNGKey(6), N, 1.0, ada.PIPES['filter'])
  assert np.all(np.asarray(gains) != 1.0)
  x = jnp.full((N, S, S, 3), 0.5)
  y = np.asarray(ada.apply_filter(x, gains))
  np.testing.assert_allclose(
      y, np.broadcast_to(y[:, :1, :1], y.shape), atol=1e-5
  )
  ones = ada.apply_filter(_images(), jnp.ones((N, 4)))
  np.testing.assert_allclose(ones, _images(), atol=1e-5)


def test_noise_does_not_depend_on_the_image():
  pipe = ada.PIPES['noise']
  key = jax.random.PRNGKey(7)
  a, b = _images(1), _images(2)
  da = ada.apply_noise(a, key, 1.0, pipe) - a
  db = ada.apply_noise(b, key, 1.0, pipe) - b
  np.testing.assert_allclose(da, db, atol=1e-6)
  # sigma = |N(0, 0.1^2)| per image.
  assert 0.0 < float(jnp.std(da)) < 0.5


def test_cutout_zeroes_one_rectangle_per_image():
  x = _images() + 2.0  # No zero pixels of its own.
  y = np.asarray(
      ada.apply_cutout(x, jax.random.PRNGKey(8), 1.0, ada.PIPES['cutout'])
  )
  for img, orig in zip(y, np.asarray(x)):
    zero = np.all(img == 0, axis=-1)
    np.testing.assert_array_equal(img[~zero], orig[~zero])
    rows, cols = np.nonzero(zero)
    assert 0 < zero.sum() <= (S // 2) ** 2
    # The zeroed pixels fill their bounding box.
    assert zero.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)


def test_per_image_shapes_ranges_and_gradients():
  x = _images()
  pipe = ada.PIPES['bgcfnc']
  fn = lambda x, p: ada.augment(x, jax.random.PRNGKey(9), p, pipe)
  y = jax.jit(fn)(x, jnp.float32(1.0))
  assert y.shape == x.shape and y.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(y)))
  # Each image gets its own draw.
  assert len({float(jnp.mean(img)) for img in y}) == N
  # Geometric ops alone stay near [-1, 1] (sym6 ringing only).
  bg = ada.augment(x, jax.random.PRNGKey(9), 1.0, ada.PIPES['bg'])
  assert float(jnp.max(jnp.abs(bg))) < 1.3
  # First and second order (R1 through the pipe) gradients are finite.
  loss = lambda x: jnp.sum(jnp.square(fn(x, jnp.float32(0.5))))
  grad = jax.grad(loss)(x)
  assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0
  r1 = lambda x: jnp.sum(jnp.square(jax.grad(loss)(x)))
  assert bool(jnp.all(jnp.isfinite(jax.grad(r1)(x))))


@pytest.mark.parametrize(
    'overrides, message',
    [
        ({'data.augment': 'kornia'}, "data.augment='kornia' is unknown"),
        (
            {'data.augment': 'ada', 'data.ada_pipe': 'xyz', 'data.ada_p': 0.2},
            "data.ada_pipe='xyz' is unknown",
        ),
        (
            {
                'data.augment': 'ada',
                'data.ada_p': 0.2,
                'data.diffaugment': 'color',
            },
            "data.diffaugment='color' is not used",
        ),
        ({'data.augment': 'ada'}, 'never augments'),
        ({'data.augment': 'ada', 'data.ada_p': -0.1}, 'data.ada_p=-0.1'),
    ],
)
def test_bad_settings_are_config_errors(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(helpers.config_with(**overrides))


@pytest.mark.parametrize('name', ['r3gan64', 'r3gan128'])
def test_r3gan_configs_use_the_references_pipe(name):
  config = helpers.load_config(name)
  assert config.data.augment == 'ada' and config.data.ada_pipe == 'r3gan'
  assert config.data.ada_p == 0.3 and config.schedule.aug_p_ramp
  assert config.data.diffaugment == '' and config.data.ada_target == 0


def test_train_step_with_adaptive_ada():
  config = helpers.config_with(
      **{
          'model.g_width': 4,
          'model.d_width': 4,
          'model.z_dim': 8,
          'data.augment': 'ada',
          'data.ada_target': 0.6,
          'data.ada_interval': 1,
          'data.ada_kimg': 0.001,
      }
  )
  config_lib.validate(config)
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  assert float(state.aug_p) == 0.0  # ADA starts at p = 0.
  batch = jax.random.randint(
      jax.random.PRNGKey(0), (8, S, S, 3), 0, 256
  ).astype(jnp.uint8)
  step = jax.jit(step_lib.make_train_step(config, g, d))
  new, metrics = step(state.replace(aug_p=jnp.float32(0.5)), batch)
  # p moves by sign(r_t - 0.6) * 8 / 1 (clamped to [0, 1]) after each step.
  assert bool(metrics['finite']) and float(metrics['aug_p']) in (0.0, 1.0)
  assert float(new.aug_p) == float(metrics['aug_p'])
