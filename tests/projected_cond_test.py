"""The class-conditional projected discriminator (the reference's SingleDiscCond)."""

import jax
import jax.numpy as jnp
import numpy as np

from catgan_jax.models import projected


def _init(module, *args, **kwargs):
  return module.init(jax.random.key(0), *args, train=False, **kwargs)


def test_mini_discriminator_projects_patch_maps_on_the_class_map():
  mini = projected.MiniDiscriminator(width=4, num_classes=3)
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 8))
  y = jnp.array([2, 0])
  variables = _init(mini, x, y=y)
  logits, inter = mini.apply(
      variables, x, train=False, y=y, capture_intermediates=True
  )
  # 16 px -> one DownBlock to 8 px -> 4x4 valid conv: 5x5 patches.
  assert logits.shape == (2, 25)
  p = variables['params']['class_map']
  table = np.asarray(p['embed']['embedding'])
  assert table.shape == (3, projected.EMBEDDING_DIM)
  e = table[np.asarray(y)] @ p['embed_proj']['kernel'] + p['embed_proj']['bias']
  cmap = np.where(e > 0, e, 0.2 * e)
  np.testing.assert_allclose(
      inter['intermediates']['class_map']['__call__'][0], cmap, rtol=1e-5
  )
  (maps,) = [
      v['__call__'][0]
      for k, v in inter['intermediates'].items()
      if k.startswith('SpectralNorm') and v['__call__'][0].shape[-1] == 64
  ]
  want = (np.asarray(maps) * cmap[:, None, None, :]).sum(-1) / 8.0
  np.testing.assert_allclose(logits, want.reshape(2, -1), rtol=1e-5, atol=1e-6)
  other = mini.apply(variables, x, train=False, y=jnp.array([1, 1]))
  assert not np.allclose(logits, other)


def test_conditional_projected_discriminator_takes_labels():
  kwargs = dict(interp_size=64, cout=4, width=4, random_features=True)
  x = jax.random.uniform(jax.random.key(2), (2, 16, 16, 3), minval=-1)
  cond = projected.ProjectedDiscriminator(num_classes=2, **kwargs)
  variables = _init(cond, x)
  apply = lambda y: cond.apply(variables, x, train=False, y=y)
  y = jnp.array([0, 1])
  logits = apply(y)
  assert not np.allclose(logits, apply(1 - y))
  # Traced only: the unconditional one has the same logits and frozen
  # parts, and no class parameters.
  plain = projected.ProjectedDiscriminator(**kwargs)
  plain_vars = jax.eval_shape(lambda: _init(plain, x))
  plain_logits = jax.eval_shape(
      lambda v: plain.apply(v, x, train=False), plain_vars
  )
  assert logits.shape == plain_logits.shape
  assert jax.tree.structure(variables['frozen']) == jax.tree.structure(
      plain_vars['frozen']
  )
  for name, params in plain_vars['params'].items():
    assert 'class_map' not in params, name
    assert 'class_map' in variables['params'][name]
