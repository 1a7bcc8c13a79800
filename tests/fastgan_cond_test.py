"""Class-conditional FastGAN generators (Projected GAN's FastganSynthesisCond)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import config_lib
from catgan_jax import models
from catgan_jax import parallel
from catgan_jax import train
from catgan_jax.models import conditioning
from catgan_jax.models import fastgan
from configs import projected64

COND = {
    'data.num_classes': 4,  # The synthetic cats' coat colours.
    'model.g_cond': 'cbn',
    'model.d_cond': 'projection',
}
# configs/projected64.py at tiny sizes: 16 px, a random feature network at
# 64 px, widths of a few channels, 2 steps, no scoring.
TINY = {
    'model.feature_random_init': True,
    'model.interp_size': 64,
    'model.proj_cout': 4,
    'model.g_width': 2,
    'model.d_width': 4,
    'model.z_dim': 16,
    'data.source': 'synthetic',
    'data.image_size': 16,
    'data.num_synthetic': 32,
    'data.min_size': 8,
    'batch_size': 4,
    'num_train_steps': 2,
    'log_every_steps': 1,
    'sample_every_steps': 100,
    'checkpoint_every_steps': 2,
    'eval.every_steps': -1,
}
Z = jax.random.normal(jax.random.key(1), (6, 16))
Y = jnp.array([0, 1, 2, 3, 1, 0])


def _config(**overrides):
  config = projected64.get_config()
  config.update_from_flattened_dict({**TINY, **COND, **overrides})
  return config


def _generator(lite, num_classes=4):
  return fastgan.Generator(
      image_size=16, ngf=4, lite=lite, num_classes=num_classes
  )


@pytest.mark.parametrize('lite', [True, False])
def test_the_label_conditions_every_upblock(lite):
  g = _generator(lite)
  variables = g.init(jax.random.key(0), Z, train=False)
  params = variables['params']
  assert params['embed']['embedding'].shape == (4, 16)  # z's size.
  for block in ('feat_8', 'feat_16'):
    names = {n for n in params[block] if n.startswith('ConditionalBatchNorm')}
    assert len(names) == (1 if lite else 2)
    # The big block's two layers share one noise weight (UpBlockBigCond).
    noise = [n for n in params[block] if n.startswith('NoiseInjection')]
    assert noise == ([] if lite else ['NoiseInjection_0'])
    assert (
        params[block]['ConditionalBatchNorm_0']['gain']['kernel'].shape[0] == 16
    )
  run = lambda y: g.apply(
      variables, Z, train=True, y=y, mutable=['batch_stats']
  )[0]
  out = run(Y)
  assert out.shape == (6, 16, 16, 3)
  assert not np.allclose(out, run((Y + 1) % 4))
  # Without labels the classes come in blocks along the batch.
  np.testing.assert_array_equal(
      g.apply(variables, Z, train=False),
      g.apply(variables, Z, train=False, y=conditioning.block_labels(6, 4)),
  )


class _CCBNHost(nn.Module):
  """A module around fastgan's CCBN, as an UpBlock calls it."""

  @nn.compact
  def __call__(self, x, e, train):
    return fastgan._ccbn(x, e, train)  # pylint: disable=protected-access


def test_ccbn_against_hand_computation():
  """CCBN: BN without affine, gain 1 + W_g e / sigma_g + b_g, bias alike."""
  x = jax.random.normal(jax.random.key(0), (4, 2, 2, 3)) * 3 + 1
  e = jax.random.normal(jax.random.key(1), (4, 5))
  module = _CCBNHost()
  variables = module.init(jax.random.key(2), x, e, True)
  out, _ = module.apply(variables, x, e, True, mutable=['batch_stats'])
  p = variables['params']['ConditionalBatchNorm_0']
  stats = variables['batch_stats']['ConditionalBatchNorm_0']

  def sn_linear(name, sn):
    w = np.asarray(p[name]['kernel'], np.float64)
    u = np.asarray(stats[sn][f'{name}/kernel/u'], np.float64)
    v = u @ w.T
    v /= np.linalg.norm(v)
    u = v @ w
    u /= np.linalg.norm(u)
    sigma = (v @ w @ u.T).item()
    return np.asarray(e) @ (w / sigma) + np.asarray(p[name]['bias'])

  xn = np.asarray(x, np.float64)
  norm = (xn - xn.mean((0, 1, 2))) / np.sqrt(xn.var((0, 1, 2)) + 1e-5)
  gain = 1 + sn_linear('gain', 'SpectralNorm_0')
  bias = sn_linear('bias', 'SpectralNorm_1')
  want = norm * gain[:, None, None] + bias[:, None, None]
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
  # Torch's Linear initialisation: U(+-1/sqrt(5)) for weights and biases.
  bound = 5**-0.5
  for name in ('gain', 'bias'):
    assert np.abs(p[name]['kernel']).max() <= bound
    assert np.abs(p[name]['bias']).max() <= bound


@pytest.mark.parametrize('name', fastgan.NAMES)
def test_unconditional_generator_is_unchanged(name):
  """With the cond fields off: no class parameters, the same outputs."""
  config = _config(
      **{
          'model.name': name,
          'data.num_classes': 0,
          'model.g_cond': '',
          'model.d_cond': '',
      }
  )
  g, _ = models.create_models(config)
  assert g.num_classes == 0
  plain = fastgan.Generator(image_size=16, ngf=2, lite=name == 'fastgan_lite')
  assert g == plain
  variables = g.init(jax.random.key(0), Z, train=False)
  params = variables['params']
  assert 'embed' not in params
  assert not any(
      'ConditionalBatchNorm' in str(k)
      for k in jax.tree_util.tree_flatten_with_path(params)[0]
  )
  # The conditional one's other parameters have the unconditional shapes.
  cond = models.create_models(_config(**{'model.name': name}))[0]
  cond_params = jax.eval_shape(
      lambda: cond.init(jax.random.key(0), Z, train=False)
  )['params']
  for key in ('ConvTranspose_0', 'BatchNorm_0', 'Conv_0'):
    assert jax.tree.map(jnp.shape, params[key]) == jax.tree.map(
        lambda s: s.shape, cond_params[key]
    )


def test_unconditional_outputs_match_the_pre_conditioning_module():
  """Output sums of the generator as it was before conditioning existed
  (measured with that module at these seeds, under the tests' jax
  configuration): an unconditional generator draws the same parameters
  and computes the same images."""
  z = jax.random.normal(jax.random.key(1), (4, 16))
  for lite, want in ((False, -16.557252883911133), (True, 27.31603240966797)):
    g = fastgan.Generator(image_size=16, ngf=4, lite=lite)
    variables = g.init(jax.random.key(0), z, train=False)
    out, _ = g.apply(
        variables,
        z,
        train=True,
        mutable=['batch_stats'],
        rngs={'noise': jax.random.key(5)},
    )
    assert float(jnp.sum(out)) == pytest.approx(want, rel=1e-5, abs=1e-4)


@pytest.mark.parametrize(
    'overrides,message',
    [
        ({'model.g_cond': 'concat'}, "g_cond='concat' is not supported by"),
        (
            {'model.discriminator': 'fastgan'},
            "discriminator='fastgan' takes no labels",
        ),
        ({'model.d_cond': ''}, 'needs a conditional generator'),
    ],
)
def test_conditioning_it_lacks_is_a_one_line_config_error(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message) as e:
    config_lib.validate(_config(**overrides))
  assert '\n' not in str(e.value)


def test_conditional_projected64_trains(tmp_path):
  """configs/projected64.py with classes, at tiny sizes: 2 steps, finite."""
  config = _config()
  initial = train.build(config, parallel.create_mesh()).state.g.params
  state = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert int(state.step) == 2
  params = parallel.fetch(state.g.params)
  assert all(np.isfinite(v).all() for v in jax.tree.leaves(params))
  # G's loss reached the class embedding and the CCBN maps: the labels
  # went through the step into the generator.
  for path in (('embed', 'embedding'), ('feat_8', 'ConditionalBatchNorm_0')):
    before, after = initial, params
    for key in path:
      before, after = before[key], after[key]
    assert jax.tree.leaves(after)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))
    ), path
