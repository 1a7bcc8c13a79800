"""Tests of catgan_jax.models: shapes, ranges, parameter counts, variants.

Parameter counts use `jax.eval_shape` of init, so the full-size models cost
no compute. Everything that runs does so at 16-32 px with width 8, one jit
per model.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax import models
from configs import default

BATCH = 4
Z_DIM = 8
RNG = np.random.default_rng(0)
# An 'rbg' key: XLA:CPU compiles its random-number kernels several times
# faster than those of the default partitionable threefry, and each
# parameter initialiser is one such kernel.
KEY = jax.random.key(0, impl='rbg')


def _config(name='dcgan', image_size=16, width=8, z_dim=Z_DIM, **model):
  config = default.get_config()
  config.model.name = name
  config.data.image_size = image_size
  config.model.g_width = width
  config.model.d_width = width
  config.model.z_dim = z_dim
  config.model.update(model)
  return config


def _inputs(config):
  size = config.data.image_size
  z = jnp.asarray(RNG.normal(size=(BATCH, config.model.z_dim)), jnp.float32)
  x = jnp.asarray(RNG.uniform(-1, 1, size=(BATCH, size, size, 3)), jnp.float32)
  return z, x


def _abstract_variables(config):
  """Shapes of the generator's and discriminator's variables (no compute)."""
  generator, discriminator = models.create_models(config)
  size = config.data.image_size
  z = jax.ShapeDtypeStruct((1, config.model.z_dim), jnp.float32)
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  key = jax.random.key(0)
  return (
      jax.eval_shape(functools.partial(generator.init, train=False), key, z),
      jax.eval_shape(
          functools.partial(discriminator.init, train=False), key, x
      ),
  )


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _layer_counts(variables):
  """Keras-style rows: every variable of a layer, running statistics too."""
  rows = {}
  for collection in variables.values():
    for layer, leaves in collection.items():
      rows[layer] = rows.get(layer, 0) + _count(leaves)
  return rows


# ---------------------------------------------------------------------------
# Parameter counts against the source implementations.


def test_dcgan64_has_the_pytorch_dcgan_parameter_counts():
  # PyTorch DCGAN (../shared/bench/peer_torch_dcgan.py), nz=100, ngf=ndf=64,
  # k=4, no biases; BatchNorm = 2 parameters per channel:
  # G: ConvT 100->512 on 1x1 (our Dense): 100*512*16 = 819,200; BN 1,024
  #    ConvT 512->256: 2,097,152; BN 512   ConvT 256->128: 524,288; BN 256
  #    ConvT 128->64:    131,072; BN 128   ConvT 64->3:      3,072
  #    total 3,576,704.
  # D: Conv 3->64: 3,072   Conv 64->128: 131,072; BN 256
  #    Conv 128->256: 524,288; BN 512   Conv 256->512: 2,097,152; BN 1,024
  #    Conv 512->1 (4x4 valid): 8,192   total 2,765,568.
  g_vars, d_vars = _abstract_variables(
      _config('dcgan', image_size=64, width=64, z_dim=100)
  )
  assert _count(g_vars['params']) == 3_576_704
  assert _count(d_vars['params']) == 2_765_568
  assert g_vars['params']['Dense_0']['kernel'].shape == (100, 4 * 4 * 512)
  assert d_vars['params']['Conv_4']['kernel'].shape == (4, 4, 512, 1)


def test_dcgan_larger_sizes_double_the_base_channels():
  # 128 px: one more block, the 4x4 base has 16w channels; 256 px: 32w.
  for size, base, last_down in ((128, 1024, 'Conv_4'), (256, 2048, 'Conv_5')):
    g_vars, d_vars = _abstract_variables(
        _config('dcgan', image_size=size, width=64, z_dim=100, kernel_size=5)
    )
    assert g_vars['params']['Dense_0']['kernel'].shape == (100, 16 * base)
    assert d_vars['params'][last_down]['kernel'].shape == (
        5,
        5,
        base // 2,
        base,
    )
    assert g_vars['params']['ConvTranspose2x_0']['kernel'].shape == (
        5,
        5,
        base,
        base // 2,
    )


def test_keras_dcgan_matches_the_keras_summary():
  g_vars, d_vars = _abstract_variables(
      _config('keras_dcgan', image_size=64, width=64, z_dim=128)
  )
  # The Keras summary counts BatchNorm as 4 numbers per channel (gamma, beta
  # and the moving mean and variance), so count params + batch_stats.
  # D: Conv 3->64 4x4: 3,072   Conv 64->64: 65,536; BN 256
  #    Conv 64->128: 131,072; BN 512   Conv 128->256: 524,288; BN 1,024
  #    Dense 4*4*256 -> 1 with bias: 4,097      total 729,857 (the summary's).
  assert _count(d_vars) == 729_857
  # G rows of the summary. They add up to 6,258,659, while the summary's
  # total line says 6,250,659 (8,000 fewer): the rows are what we match.
  expected_rows = {
      'Dense_0': 128 * 2048 + 2048,  # 264,192
      'ConvTranspose_0': 5 * 5 * 128 * 512,  # 1,638,400
      'BatchNorm_0': 4 * 512,  # 2,048
      'ConvTranspose2x_0': 5 * 5 * 512 * 256,  # 3,276,800
      'BatchNorm_1': 4 * 256,  # 1,024
      'ConvTranspose2x_1': 5 * 5 * 256 * 128,  # 819,200
      'BatchNorm_2': 4 * 128,  # 512
      'ConvTranspose2x_2': 5 * 5 * 128 * 64,  # 204,800
      'BatchNorm_3': 4 * 64,  # 256
      'ConvTranspose2x_3': 5 * 5 * 64 * 32,  # 51,200
      'BatchNorm_4': 4 * 32,  # 128
      'Dense_1': 32 * 3 + 3,  # 99
  }
  assert _layer_counts(g_vars) == expected_rows
  assert _count(g_vars) == sum(expected_rows.values()) == 6_258_659


def test_dcgan128_tf_parameter_counts():
  # tf.layers defaults: every layer has a bias; BN = 2 parameters/channel.
  # G: Dense 100 -> 8*8*1024: 6,619,136
  #    ConvT 5x5 1024->512: 13,107,712; BN 1,024   512->256: 3,277,056; BN 512
  #    256->128: 819,328; BN 256   128->64: 204,864; BN 128
  #    ConvT 5x5 stride 1 64->3: 4,803          total 24,034,819.
  # D: Conv 5x5 3->64: 4,864   64->128: 204,928; BN 256
  #    128->256: 819,456; BN 512   256->512: 3,277,312; BN 1,024
  #    512->1024: 13,108,224; BN 2,048   Dense 65,536 -> 1: 65,537
  #    total 17,484,161.
  g_vars, d_vars = _abstract_variables(
      _config('dcgan128_tf', image_size=128, width=64, z_dim=100)
  )
  assert _count(g_vars['params']) == 24_034_819
  assert _count(d_vars['params']) == 17_484_161


# ---------------------------------------------------------------------------
# Running the models.


@functools.cache
def _run(name, image_size):
  """Init and train/eval passes of a tiny G and D, in one jit."""
  config = _config(name, image_size=image_size)
  generator, discriminator = models.create_models(config)
  z, x = _inputs(config)

  @jax.jit
  def run(key):
    g_key, d_key = jax.random.split(key)
    g_vars = generator.init(g_key, z, train=False)
    d_vars = discriminator.init(d_key, x, train=False)
    images, g_updates = generator.apply(
        g_vars, z, train=True, mutable=['batch_stats']
    )
    logits, d_updates = discriminator.apply(
        d_vars, x, train=True, mutable=['batch_stats']
    )
    return dict(
        g_vars=g_vars,
        d_vars=d_vars,
        images=images,
        g_updates=g_updates,
        logits=logits,
        d_updates=d_updates,
        images_eval=generator.apply(g_vars, z, train=False),
        logits_eval=discriminator.apply(d_vars, x, train=False),
    )

  return run(KEY)


MODEL_SIZES = [('dcgan', 16), ('keras_dcgan', 16), ('dcgan128_tf', 16)]
# The architectures with model.norm / d_norm / spectral_norm options (r3gan
# has no normalisation; tests/r3gan_test.py covers it).
NORM_MODELS = [name for name, _ in MODEL_SIZES]


@pytest.mark.parametrize('name,image_size', MODEL_SIZES)
def test_generator_outputs_tanh_images(name, image_size):
  out = _run(name, image_size)
  for images in (out['images'], out['images_eval']):
    assert images.shape == (BATCH, image_size, image_size, 3)
    assert images.dtype == jnp.float32
    assert np.all(np.isfinite(images))
    assert np.all(np.abs(images) <= 1.0)
    assert float(images.std()) > 0.0  # Not collapsed to a constant.


@pytest.mark.parametrize('name,image_size', MODEL_SIZES)
def test_discriminator_outputs_one_logit_per_image(name, image_size):
  out = _run(name, image_size)
  for logits in (out['logits'], out['logits_eval']):
    assert logits.shape == (BATCH,)
    assert logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
  assert len(np.unique(np.asarray(out['logits']))) == BATCH


@pytest.mark.parametrize('name,image_size', MODEL_SIZES)
def test_batch_norm_statistics_live_in_batch_stats(name, image_size):
  out = _run(name, image_size)
  for variables, updates in (
      (out['g_vars'], out['g_updates']),
      (out['d_vars'], out['d_updates']),
  ):
    assert set(variables) == {'params', 'batch_stats'}
    # A training pass moves the running means away from their zero init
    # (momentum 0.9: new = 0.1 * batch mean).
    old = jax.tree.leaves(variables['batch_stats'])
    new = jax.tree.leaves(updates['batch_stats'])
    assert any(float(jnp.abs(a - b).max()) > 0 for a, b in zip(old, new))
  # Train mode normalises with the batch, eval mode with running averages.
  assert not np.allclose(out['images'], out['images_eval'])


def test_dcgan_initialisation_follows_the_recipe():
  params = _run('dcgan', 16)['g_vars']['params']
  # 4x4 kernels from 16 -> 8 channels: 2,048 draws of N(0, 0.02).
  kernel = params['ConvTranspose2x_0']['kernel']
  assert abs(float(kernel.std()) - 0.02) < 0.002
  scale = params['BatchNorm_1']['scale']  # N(1, 0.02) over 8 channels.
  assert float(jnp.abs(scale - 1.0).max()) < 0.1
  assert float(jnp.abs(scale - 1.0).min()) > 0.0


@pytest.mark.parametrize('name', NORM_MODELS)
@pytest.mark.parametrize('norm', ['selu', 'none'])
def test_norms_without_batch_norm_create_no_batch_stats(name, norm):
  g_vars, d_vars = _abstract_variables(_config(name, norm=norm))
  assert set(g_vars) == set(d_vars) == {'params'}
  # Without normalisation the layers carry biases.
  assert 'bias' in g_vars['params']['Dense_0']


def test_selu_uses_lecun_normal_weights():
  config = _config('dcgan', norm='selu')
  generator, _ = models.create_models(config)
  z, _ = _inputs(config)
  params = jax.jit(functools.partial(generator.init, train=False))(KEY, z)[
      'params'
  ]
  kernel = params['ConvTranspose2x_0']['kernel']  # fan_in = 4 * 4 * 16.
  assert abs(float(kernel.std()) * np.sqrt(4 * 4 * 16) - 1.0) < 0.1


@pytest.mark.parametrize('name', NORM_MODELS)
def test_layer_norm_discriminator(name):
  g_vars, d_vars = _abstract_variables(_config(name, d_norm='layer'))
  assert 'batch_stats' in g_vars  # G keeps model.norm = 'batch'.
  assert set(d_vars) == {'params'}
  assert any(layer.startswith('LayerNorm') for layer in d_vars['params'])


@pytest.mark.parametrize('name', NORM_MODELS)
def test_spectral_norm_wraps_every_discriminator_layer(name):
  _, d_vars = _abstract_variables(
      _config(name, spectral_norm=True, norm='none')
  )
  weight_layers = {
      layer for layer in d_vars['params'] if layer.startswith(('Conv', 'Dense'))
  }
  normalised = {
      key.split('/')[0]
      for layer, state in d_vars['batch_stats'].items()
      if layer.startswith('SpectralNorm')
      for key in state
  }
  assert weight_layers and normalised == weight_layers


def test_spectral_norm_updates_its_state_only_in_train_mode():
  config = _config('dcgan', spectral_norm=True, norm='none')
  _, discriminator = models.create_models(config)
  _, x = _inputs(config)

  @jax.jit
  def run(key):
    variables = discriminator.init(key, x, train=False)
    _, eval_updates = discriminator.apply(
        variables, x, train=False, mutable=['batch_stats']
    )

    def train_pass(batch_stats, _):
      _, updates = discriminator.apply(
          {'params': variables['params'], 'batch_stats': batch_stats},
          x,
          train=True,
          mutable=['batch_stats'],
      )
      return updates['batch_stats'], None

    trained, _ = jax.lax.scan(
        train_pass, variables['batch_stats'], None, length=50
    )
    return variables, eval_updates['batch_stats'], trained

  variables, after_eval, after_train = run(KEY)
  unchanged = jax.tree.map(np.array_equal, variables['batch_stats'], after_eval)
  assert all(jax.tree.leaves(unchanged))
  state = after_train['SpectralNorm_1']
  assert not np.array_equal(
      state['Conv_1/kernel/u'],
      variables['batch_stats']['SpectralNorm_1']['Conv_1/kernel/u'],
  )
  # 50 power iterations estimate the largest singular value of the kernel
  # reshaped to (k * k * in, out).
  kernel = np.asarray(variables['params']['Conv_1']['kernel'])
  top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
  np.testing.assert_allclose(state['Conv_1/kernel/sigma'], top, rtol=0.02)


# FastGAN (float32 only) is tested in tests/fastgan_test.py.
@pytest.mark.parametrize(
    'name', [n for n in models.MODELS if not n.startswith('fastgan')]
)
def test_bfloat16_compute_gives_float32_outputs(name):
  config = _config(name, dtype='bfloat16', image_size=32)
  generator, discriminator = models.create_models(config)
  g_vars, d_vars = _abstract_variables(config)
  for leaf in jax.tree.leaves((g_vars, d_vars)):
    assert leaf.dtype == jnp.float32  # Parameters stay float32.
  z, x = _inputs(config)
  for module, variables, inputs in (
      (generator, g_vars, z),
      (discriminator, d_vars, x),
  ):
    apply = functools.partial(module.apply, train=False)
    assert jax.eval_shape(apply, variables, inputs).dtype == jnp.float32
    # The convolutions themselves run in bfloat16.
    jaxpr = str(
        jax.make_jaxpr(apply)(
            jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), variables),
            inputs,
        )
    )
    assert re.search(r':bf16\[[\d,]*\] = conv_general_dilated', jaxpr)


# ---------------------------------------------------------------------------
# Registry and config errors.


def test_registry_lists_the_architectures():
  assert set(models.MODELS) == {
      'dcgan',
      'keras_dcgan',
      'dcgan128_tf',
      'r3gan',
      'fastgan',
      'fastgan_lite',
  }


def test_unknown_model_name_is_a_clear_error():
  with pytest.raises(ValueError) as error:
    models.create_models(_config('stylegan'))
  message = str(error.value)
  assert message.startswith("model.name='stylegan' is not supported")
  assert all(repr(name) in message for name in models.MODELS)
  assert '\n' not in message


@pytest.mark.parametrize(
    'name,size,supported',
    [
        ('dcgan', 48, '16, 32, 64, 128, 256'),
        ('keras_dcgan', 128, '16, 32, 64'),
        ('dcgan128_tf', 8, '16, 32, 64, 128'),
    ],
)
def test_unsupported_image_size_is_a_clear_error(name, size, supported):
  with pytest.raises(ValueError) as error:
    models.create_models(_config(name, image_size=size))
  assert str(error.value) == (
      f'data.image_size={size} is not supported by model.name={name!r} '
      f'(supported: {supported}).'
  )


@pytest.mark.parametrize(
    'field,value',
    [('norm', 'group'), ('d_norm', 'instance'), ('dtype', 'float16')],
)
def test_unknown_model_option_is_a_clear_error(field, value):
  with pytest.raises(ValueError, match=rf'^model\.{field}={value!r} is not'):
    models.create_models(_config('dcgan', **{field: value}))


@pytest.mark.parametrize('name', NORM_MODELS)
def test_spectral_norm_drops_the_discriminators_batch_norm(name):
  """BN after an SN layer would undo it: D has no BN (relativistic code)."""
  _, with_bn = _abstract_variables(_config(name, norm='batch'))
  _, d_vars = _abstract_variables(
      _config(name, norm='batch', spectral_norm=True)
  )
  assert any(layer.startswith('BatchNorm') for layer in with_bn['params'])
  assert not any(layer.startswith('BatchNorm') for layer in d_vars['params'])
  assert all(
      layer.startswith('SpectralNorm') for layer in d_vars['batch_stats']
  )
  # The weight layers are those of the BatchNorm discriminator (no biases
  # added where BN had made them redundant).
  weights = lambda v: {
      layer: jax.tree.map(jnp.shape, p)
      for layer, p in v['params'].items()
      if not layer.startswith('BatchNorm')
  }
  assert weights(d_vars) == weights(with_bn)


def test_spectral_norm_with_layer_norm_is_refused():
  with pytest.raises(ValueError, match='model.spectral_norm=True'):
    models.create_models(_config('dcgan', d_norm='layer', spectral_norm=True))


def test_selu_recipe_is_bias_free_with_dcgan_init():
  """Deep-learning-with-cats DCGAN.py --SELU: bias=False, N(0, 0.02)."""
  config = _config(
      'dcgan',
      image_size=32,
      width=16,
      norm='selu',
      kernel_init='dcgan_normal',
      use_bias=False,
  )
  generator, discriminator = models.create_models(config)
  z, x = _inputs(config)
  for module, inputs in ((generator, z), (discriminator, x)):
    params = jax.jit(functools.partial(module.init, train=False))(KEY, inputs)
    assert set(params) == {'params'}  # No BatchNorm statistics.
    names = [
        jax.tree_util.keystr(path)
        for path, _ in jax.tree_util.tree_leaves_with_path(params['params'])
    ]
    assert names and not any('bias' in n for n in names), names
    big = [
        np.asarray(k)
        for k in jax.tree.leaves(params['params'])
        if k.size >= 2000
    ]
    for kernel in big:
      assert abs(kernel.std() - 0.02) < 0.002, kernel.shape
  with pytest.raises(ValueError, match="model.kernel_init='nope'"):
    models.create_models(_config('dcgan', kernel_init='nope'))
  with pytest.raises(ValueError, match='only supported by'):
    models.create_models(_config('keras_dcgan', use_bias=False))
