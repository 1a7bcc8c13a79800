"""FastGAN's generator: shapes, its blocks against hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import inference
from catgan_jax import models
from catgan_jax.models import fastgan
import helpers


def _sigmoid(x):
  return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize('name', fastgan.NAMES)
@pytest.mark.parametrize('size', [64, 128, 256])
def test_generator_makes_images_of_each_size(name, size):
  config = helpers.config_with(
      **{
          'model.name': name,
          'data.image_size': size,
          'model.g_width': 4,
          'model.feature_random_init': True,
      }
  )
  generator, _ = models.create_models(config)
  z = jnp.ones((2, config.model.z_dim))
  variables = jax.eval_shape(
      lambda: generator.init(jax.random.key(0), z, train=False)
  )
  out = jax.eval_shape(lambda v: generator.apply(v, z, train=False), variables)
  assert out.shape == (2, size, size, 3) and out.dtype == jnp.float32
  # SLE gates at 64 px and up: se_64 always, se_128 / se_256 with the size.
  sle = {k for k in variables['params'] if k.startswith('se_')}
  assert sle == {f'se_{s}' for s in (64, 128, 256) if s <= size}
  noise = [k for k in jax.tree_util.tree_flatten_with_path(variables)[0]]
  has_noise = any('NoiseInjection' in jax.tree_util.keystr(p) for p, _ in noise)
  assert has_noise == (name == 'fastgan')


def test_widths_follow_the_reference():
  nfc = fastgan.widths(128)
  assert [nfc[s] for s in (4, 8, 16, 32, 64, 128, 256)] == [
      2048,
      1024,
      512,
      256,
      256,
      128,
      64,
  ]


def test_glu_gates_the_first_half_by_the_second():
  x = jnp.asarray([[1.0, 2.0, 3.0, -4.0]])
  np.testing.assert_allclose(
      fastgan.glu(x),
      [[1.0 * _sigmoid(3.0), 2.0 * _sigmoid(-4.0)]],
      rtol=1e-6,
  )


def test_sle_scales_the_big_map_by_a_gate_of_the_small_one():
  # Rank-1 kernels: spectral normalisation divides each by its one nonzero
  # entry's magnitude (one power iteration finds it exactly), so the gate
  # of channel 0 is sigmoid(swish(small[0, 0, 0])) and channel 1's is
  # sigmoid(swish(0)) = 1/2.
  small = jnp.zeros((1, 8, 8, 1)).at[0, :2, :2, 0].set(3.0)  # Pools to 3.
  big = jnp.full((1, 2, 2, 2), 2.0)
  block = fastgan.SLEBlock()
  variables = block.init(jax.random.key(0), small, big, train=False)
  params = jax.tree.map(jnp.zeros_like, variables['params'])
  params['Conv_0']['kernel'] = params['Conv_0']['kernel'].at[0, 0, 0, 0].set(-5)
  params['Conv_1']['kernel'] = params['Conv_1']['kernel'].at[0, 0, 0, 0].set(2)
  out = block.apply(
      {'params': params, 'batch_stats': variables['batch_stats']},
      small,
      big,
      train=False,
  )
  pre = -3.0  # sign(-5) * 3.
  gate0 = _sigmoid(pre * _sigmoid(pre))
  np.testing.assert_allclose(out[0, :, :, 0], 2.0 * gate0, rtol=1e-5)
  np.testing.assert_allclose(out[0, :, :, 1], 2.0 * 0.5, rtol=1e-5)


def test_noise_injection_draws_only_from_a_noise_stream():
  x = jnp.ones((2, 4, 4, 3))
  layer = fastgan.NoiseInjection()
  params = {'params': {'weight': jnp.asarray([0.5])}}
  np.testing.assert_array_equal(layer.apply(params, x), x)
  noisy = layer.apply(params, x, rngs={'noise': jax.random.key(1)})
  diff = np.asarray(noisy - x)
  # One noise map per image, shared by the channels.
  assert np.abs(diff).max() > 0
  np.testing.assert_array_equal(diff[..., 0], diff[..., 2])
  assert not np.array_equal(diff[0], diff[1])


def test_sampling_output_is_clipped_training_output_is_not():
  generator = fastgan.Generator(image_size=16, ngf=2, lite=True)
  z = jax.random.normal(jax.random.key(0), (2, 8))

  @jax.jit
  def outputs(key):
    variables = generator.init(key, z, train=False)
    params = jax.tree.map(lambda p: p * 50.0, variables['params'])
    variables = {**variables, 'params': params}
    sample = generator.apply(variables, z, train=False)
    raw, _ = generator.apply(variables, z, train=True, mutable=['batch_stats'])
    return sample, raw

  sample, raw = outputs(jax.random.key(1))
  assert float(jnp.abs(sample).max()) <= 1.0
  assert float(jnp.abs(raw).max()) > 1.0


def test_standing_statistics_keep_spectral_norm_state():
  # FastGAN's BatchNorm layers follow spectrally normalised convolutions:
  # the standing statistics average the former and keep the latter's u.
  generator = fastgan.Generator(image_size=16, ngf=2, lite=True)
  z = jnp.ones((2, 8))
  variables = generator.init(jax.random.key(0), z, train=False)
  stats = jax.jit(
      lambda v: inference.standing_batch_stats(
          generator, v['params'], v['batch_stats'], jax.random.key(1), 2, 4, 8
      )
  )(variables)
  before = jax.tree_util.tree_flatten_with_path(variables['batch_stats'])[0]
  after = dict(jax.tree_util.tree_flatten_with_path(stats)[0])
  for path, value in before:
    new = after[path]
    assert np.isfinite(np.asarray(new)).all(), path
    name = jax.tree_util.keystr(path)
    if name.endswith("['mean']") or name.endswith("['var']"):
      assert not np.array_equal(new, value), name  # From the 2 passes.
    else:
      np.testing.assert_array_equal(new, value, err_msg=name)
