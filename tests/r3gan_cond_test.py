"""Class-conditional R3GAN: the reference's ConditionEmbeddingDimension path."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import config_lib
from catgan_jax import models
from catgan_jax.models import r3gan
from configs import r3gan64

COND = {
    'data.num_classes': 3,
    'model.g_cond': 'concat',
    'model.d_cond': 'projection',
    'model.cond_dim': 8,
}


def _config(**overrides):
  config = r3gan64.get_config()
  config.data.image_size = 16
  config.model.r3gan_widths = (32, 32, 16)
  config.update_from_flattened_dict({**COND, **overrides})
  return config


@pytest.fixture(scope='module')
def nets():
  g, d = models.create_models(_config())
  z = jax.random.normal(jax.random.key(0), (6, 64))
  x = jax.random.normal(jax.random.key(1), (6, 16, 16, 3))
  g_vars = g.init(jax.random.key(2), z, train=False)
  d_vars = d.init(jax.random.key(3), x, train=False)
  return g, d, g_vars, d_vars, z, x


def test_embeddings_have_the_references_shapes_and_scales(nets):
  g, d, g_vars, d_vars, _, _ = nets
  g_table = g_vars['params']['class_embedding']['embedding']
  d_table = d_vars['params']['class_embedding']['embedding']
  # G: cond_dim entries beside z; D: the 4x4 stage's width (32).
  assert g_table.shape == (3, 8) and d_table.shape == (3, 32)
  assert g_vars['params']['Dense_0']['kernel'].shape == (64 + 8, 32)
  assert d_vars['params']['Dense_0']['kernel'].shape == (32, 32)
  # MSR init of a one-hot Linear: N(0, gain / sqrt(C)) (loose: few draws).
  big_g = r3gan.class_embedding(3, 4000, 1.0, 'e').init(
      jax.random.key(0), jnp.zeros(1, jnp.int32)
  )['params']['embedding']
  assert float(jnp.std(big_g)) == pytest.approx(1 / math.sqrt(3), rel=0.02)
  assert g.num_classes == d.num_classes == 3


def test_generator_is_the_unconditional_one_on_z_and_the_embedding(nets):
  g, _, g_vars, _, z, _ = nets
  y = jnp.array([0, 1, 2, 2, 1, 0])
  out = g.apply(g_vars, z, train=True, y=y)
  assert out.shape == (6, 16, 16, 3)
  table = g_vars['params']['class_embedding']['embedding']
  plain = g.clone(num_classes=0)
  params = {k: v for k, v in g_vars['params'].items() if k != 'class_embedding'}
  want = plain.apply(
      {'params': params}, jnp.concatenate([z, table[y]], -1), train=True
  )
  np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
  other = g.apply(g_vars, z, train=True, y=(y + 1) % 3)
  assert not np.allclose(out, other)


def test_discriminator_projects_its_vector_on_the_class_embedding(nets):
  _, d, _, d_vars, _, x = nets
  y = jnp.array([2, 0, 1, 1, 0, 2])
  logits, inter = d.apply(
      d_vars, x, train=True, y=y, capture_intermediates=True
  )
  assert logits.shape == (6,) and logits.dtype == jnp.float32
  (vector,) = inter['intermediates']['Dense_0']['__call__']
  table = d_vars['params']['class_embedding']['embedding']
  want = np.sum(np.asarray(vector) * np.asarray(table)[np.asarray(y)], -1)
  np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-6)
  assert not np.allclose(logits, d.apply(d_vars, x, train=True, y=(y + 1) % 3))
  # Without labels the classes come in blocks (0, 0, 1, 1, 2, 2).
  np.testing.assert_array_equal(
      d.apply(d_vars, x, train=True),
      d.apply(d_vars, x, train=True, y=jnp.array([0, 0, 1, 1, 2, 2])),
  )


def test_unconditional_r3gan_has_no_class_parameters():
  g, d = models.create_models(
      _config(**{'data.num_classes': 0, 'model.g_cond': '', 'model.d_cond': ''})
  )
  z, x = jnp.zeros((1, 64)), jnp.zeros((1, 16, 16, 3))
  g_params = g.init(jax.random.key(0), z, train=False)['params']
  d_params = d.init(jax.random.key(0), x, train=False)['params']
  assert 'class_embedding' not in g_params | d_params
  assert g_params['Dense_0']['kernel'].shape == (64, 32)
  assert d_params['Dense_0']['kernel'].shape == (32, 1)


@pytest.mark.parametrize(
    'overrides,message',
    [
        ({'model.g_cond': 'cbn'}, "g_cond='cbn' is not supported by"),
        ({'model.d_cond': ''}, 'needs a conditional generator'),
    ],
)
def test_bad_conditioning_is_a_config_error(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(_config(**overrides))
