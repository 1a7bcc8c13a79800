"""catgan_jax's DCGAN-64 computes what the PyTorch reference DCGAN computes.

`assets/torch_dcgan64_step.npz` holds one iteration of the PyTorch peer
(`../shared/bench/peer_torch_dcgan.py`, narrow widths), written by
`tools/torch_peer/make_parity_fixture.py`: initial weights, latents, images,
losses and gradients. Its weights are loaded into catgan_jax's Generator and
Discriminator (converted by `models/torch_layout.py`), and the generated
images, the non-saturating D and G losses and every gradient must agree. This pins the architecture (layer order, padding,
BatchNorm in training mode, no biases), the loss and the gradients of the
phase-decomposed transposed convolution to the reference.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from catgan_jax import losses
from catgan_jax import models
from catgan_jax import step as step_lib
from catgan_jax.models import torch_layout

FIXTURE = os.path.join(
    os.path.dirname(__file__), '..', 'assets', 'torch_dcgan64_step.npz'
)
# Sequential indices of the peer's layers with weights: (conv, batchnorm).
G_LAYERS = [(3, 1), (6, 4), (9, 7), (12, 10)]
D_CONVS = [0, 2, 5, 8, 11]
D_NORMS = [3, 6, 9]


def _bn(ref, prefix, index):
  return {
      'scale': ref[f'{prefix}.{index}.weight'],
      'bias': ref[f'{prefix}.{index}.bias'],
  }


def _g_params(ref, prefix='g'):
  params = {
      'Dense_0': {
          'kernel': torch_layout.dense_from_torch(ref[f'{prefix}.0.weight'])
      }
  }
  for i, (conv, norm) in enumerate(G_LAYERS):
    params[f'ConvTranspose2x_{i}'] = {
        'kernel': torch_layout.conv_transpose_from_torch(
            ref[f'{prefix}.{conv}.weight']
        )
    }
    params[f'BatchNorm_{i}'] = _bn(ref, prefix, norm)
  return params


def _d_params(ref, prefix='d'):
  params = {
      f'Conv_{i}': {
          'kernel': torch_layout.conv_from_torch(ref[f'{prefix}.{c}.weight'])
      }
      for i, c in enumerate(D_CONVS)
  }
  for i, norm in enumerate(D_NORMS):
    params[f'BatchNorm_{i}'] = _bn(ref, prefix, norm)
  return params


@pytest.fixture(scope='module')
def setup():
  ref = dict(np.load(FIXTURE))
  z_dim, width = ref['z'].shape[1], ref['g.12.weight'].shape[0]
  config = ml_collections.ConfigDict(
      {
          'data': {'image_size': 64},
          'model': {
              'name': 'dcgan',
              'z_dim': z_dim,
              'g_width': width,
              'd_width': ref['d.0.weight'].shape[0],
              'kernel_size': 4,
              'norm': 'batch',
              'd_norm': '',
              'spectral_norm': False,
              'dtype': 'float32',
          },
          'loss': {'name': 'nsgan', 'real_label': 1.0, 'fake_label': 0.0},
      }
  )
  generator, discriminator = models.create_models(config)
  g_vars = generator.init(
      jax.random.PRNGKey(0), jnp.zeros((1, z_dim)), train=False
  )
  d_vars = discriminator.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False
  )
  return ref, config, generator, discriminator, g_vars, d_vars


@pytest.fixture(scope='module')
def computed(setup):
  """catgan_jax's images, losses and gradients from the peer's weights."""
  ref, config, generator, discriminator, g_vars, d_vars = setup
  gan_loss = losses.get_loss('nsgan')
  z = jnp.asarray(ref['z'])
  real = step_lib.to_float_images(jnp.asarray(ref['real_u8']))

  def generate(g_params):
    return generator.apply(
        {'params': g_params, 'batch_stats': g_vars['batch_stats']},
        z,
        train=True,
        mutable=['batch_stats'],
    )[0]

  def discriminate(d_params, x, stats):
    return discriminator.apply(
        {'params': d_params, 'batch_stats': stats},
        x,
        train=True,
        mutable=['batch_stats'],
    )

  g_params, d_params = _g_params(ref), _d_params(ref)
  fake = generate(g_params)

  def d_loss(d_params):
    real_logits, mut = discriminate(d_params, real, d_vars['batch_stats'])
    fake_logits, _ = discriminate(
        d_params, jax.lax.stop_gradient(fake), mut['batch_stats']
    )
    return gan_loss.d_loss(real_logits, fake_logits, config.loss)

  def g_loss(g_params):
    logits, _ = discriminate(
        d_params, generate(g_params), d_vars['batch_stats']
    )
    return gan_loss.g_loss(None, logits, config.loss)

  d_value, d_grads = jax.value_and_grad(d_loss)(d_params)
  g_value, g_grads = jax.value_and_grad(g_loss)(g_params)
  return fake, d_value, d_grads, g_value, g_grads


def test_generator_output_matches(setup, computed):
  ref = setup[0]
  fake = computed[0]
  np.testing.assert_allclose(
      np.asarray(fake[0]), ref['fake0'].transpose(1, 2, 0), atol=1e-5
  )


def test_losses_match(setup, computed):
  ref = setup[0]
  _, d_value, _, g_value, _ = computed
  assert float(d_value) == pytest.approx(float(ref['d_loss']), rel=1e-5)
  assert float(g_value) == pytest.approx(float(ref['g_loss']), rel=1e-5)


def test_gradients_match(setup, computed):
  ref = setup[0]
  _, _, d_grads, _, g_grads = computed
  expected = {'d': _d_params(ref, 'd_grad'), 'g': _g_params(ref, 'g_grad')}
  got = {'d': d_grads, 'g': g_grads}

  def check(path, want, have):
    scale = np.max(np.abs(want)) + 1e-12
    err = np.max(np.abs(np.asarray(have) - want)) / scale
    assert err < 1e-3, (jax.tree_util.keystr(path), err)

  jax.tree_util.tree_map_with_path(check, expected, got)


def test_torch_layouts_round_trip_and_flip():
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(4, 4, 3, 5)).astype(np.float32)
  for to_torch, from_torch in (
      (torch_layout.conv_to_torch, torch_layout.conv_from_torch),
      (
          torch_layout.conv_transpose_to_torch,
          torch_layout.conv_transpose_from_torch,
      ),
  ):
    np.testing.assert_array_equal(from_torch(to_torch(kernel)), kernel)
  dense = rng.normal(size=(7, 4 * 4 * 6)).astype(np.float32)
  assert torch_layout.dense_to_torch(dense).shape == (7, 6, 4, 4)
  np.testing.assert_array_equal(
      torch_layout.dense_from_torch(torch_layout.dense_to_torch(dense)), dense
  )
  # A transposed-conv tap at flax's top-left is PyTorch's bottom-right.
  one_tap = np.zeros((4, 4, 3, 5), np.float32)
  one_tap[0, 1, 2, 4] = 1.0
  torch_weight = torch_layout.conv_transpose_to_torch(one_tap)
  assert torch_weight.shape == (3, 5, 4, 4)
  assert torch_weight[2, 4, 3, 2] == 1.0 and torch_weight.sum() == 1.0
  # A convolution tap keeps its place; only the axes move.
  assert torch_layout.conv_to_torch(one_tap)[4, 2, 0, 1] == 1.0
