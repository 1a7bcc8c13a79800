"""Tests of catgan_jax.models.layers: the phase-decomposed transposed conv."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax.models import layers


# Compilation dominates on a busy 2-core machine, so parameters come from
# numpy (no random-number kernels to compile) and each check is one jit.
RNG = np.random.default_rng(0)


def _random_like(tree):
  return jax.tree.map(
      lambda s: jnp.asarray(RNG.normal(size=s.shape), jnp.float32), tree
  )


# 4 output channels take the one-convolution form, 16 the four phases.
@pytest.mark.parametrize(
    'kernel_size,features', [(3, 4), (4, 4), (5, 4), (2, 4), (4, 16), (5, 16)]
)
def test_conv_transpose_2x_equals_flax_values_and_gradients(
    kernel_size, features
):
  x = jnp.asarray(RNG.normal(size=(2, 5, 7, 3)), jnp.float32)  # Non-square.
  reference = nn.ConvTranspose(
      features, (kernel_size, kernel_size), strides=(2, 2), padding='SAME'
  )
  fast = layers.ConvTranspose2x(features, kernel_size)
  shapes = jax.eval_shape(reference.init, jax.random.key(0), x)
  # Same parameter names, shapes and layout: checkpoints are interchangeable.
  assert jax.eval_shape(fast.init, jax.random.key(0), x) == shapes
  variables = _random_like(shapes)  # Random bias too, so it is tested.
  # A non-uniform cotangent, so that every output position weighs differently.
  weights = jnp.asarray(RNG.normal(size=(2, 10, 14, features)), jnp.float32)

  @jax.jit
  def outputs_and_grads(variables, x):
    results = []
    for module in (reference, fast):
      loss = lambda v, x, m=module: jnp.sum(weights * jnp.sin(m.apply(v, x)))
      results.append(
          (
              module.apply(variables, x),
              jax.grad(loss, argnums=(0, 1))(variables, x),
          )
      )
    return results

  (want, want_grads), (got, got_grads) = outputs_and_grads(variables, x)
  assert got.shape == want.shape == (2, 10, 14, features)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)


def test_conv_transpose_2x_pytorch_placement_for_kernel_4():
  # Kernel 4 'SAME' places outputs like PyTorch's ConvTranspose2d(4,
  # stride=2, padding=1). A single 1 at input (1, 1):
  #   PyTorch: y[o] = W[o + padding - 2 * 1] = W[o - 1], so rows 1..4 hold
  #            W[0..3].
  #   flax (unflipped kernel K, input dilated by 2 then padded by 2):
  #            y[o] = K[j] with o + j - 2 = 2 * 1, so rows 1..4 hold K[3..0].
  # Same footprint; PyTorch's stored kernel is flax's flipped.
  x = jnp.zeros((1, 3, 3, 1)).at[0, 1, 1, 0].set(1.0)
  kernel = (10 * jnp.arange(4)[:, None] + jnp.arange(4)[None, :] + 1).astype(
      jnp.float32
  )[:, :, None, None]
  y = jax.jit(layers.ConvTranspose2x(1, 4, use_bias=False).apply)(
      {'params': {'kernel': kernel}}, x
  )[0, :, :, 0]
  assert y.shape == (6, 6)
  np.testing.assert_array_equal(y[1:5, 1:5], kernel[::-1, ::-1, 0, 0])
  assert float(y.sum()) == float(kernel.sum())  # Nothing outside 1..4.


def test_conv_transpose_2x_bfloat16_compute():
  x = jax.ShapeDtypeStruct((1, 4, 4, 3), jnp.float32)
  module = layers.ConvTranspose2x(2, 4, dtype=jnp.bfloat16)
  variables = jax.eval_shape(module.init, jax.random.key(0), x)
  assert variables['params']['kernel'].dtype == jnp.float32
  assert jax.eval_shape(module.apply, variables, x).dtype == jnp.bfloat16


def test_conv_transpose_2x_rejects_kernel_1():
  with pytest.raises(ValueError, match='kernel_size >= 2'):
    jax.eval_shape(
        layers.ConvTranspose2x(2, 1).init,
        jax.random.key(0),
        jnp.ones((1, 2, 2, 1)),
    )


@pytest.mark.parametrize('kernel_size', [3, 4, 5])
def test_fast_conv_equals_lax_values_gradients_and_second_order(kernel_size):
  # Stride 2 with 16 input channels takes the phase-decomposed input
  # gradient; the second-order check is the gradient penalty's path (the
  # parameter gradient of a norm of the input gradient).
  x = jnp.asarray(RNG.normal(size=(2, 8, 6, 16)), jnp.float32)  # Non-square.
  reference = nn.Conv(
      3, (kernel_size, kernel_size), strides=(2, 2), padding='SAME'
  )
  fast = nn.Conv(
      3,
      (kernel_size, kernel_size),
      strides=(2, 2),
      padding='SAME',
      conv_general_dilated=layers.conv_general_dilated,
  )
  variables = _random_like(jax.eval_shape(reference.init, jax.random.key(0), x))
  weights = jnp.asarray(RNG.normal(size=(2, 4, 3, 3)), jnp.float32)

  @jax.jit
  def results(variables, x):
    out = []
    for module in (reference, fast):
      loss = lambda v, x, m=module: jnp.sum(weights * jnp.sin(m.apply(v, x)))
      penalty = lambda v, x, loss=loss: jnp.sum(
          jax.grad(loss, argnums=1)(v, x) ** 2
      )
      out.append(
          (
              module.apply(variables, x),
              jax.grad(loss, argnums=(0, 1))(variables, x),
              jax.grad(penalty)(variables, x),
          )
      )
    return out

  want, got = results(variables, x)
  assert got[0].shape == (2, 4, 3, 3)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    # float32 sums in another order: errors scale with the array's size.
    np.testing.assert_allclose(
        g, w, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(w)))
    )


# Per-group convolutions (4 and 8 channels a group, 2 with 1x1), depthwise
# (16 groups of one channel) with multipliers 1 and 2.
@pytest.mark.parametrize(
    'kernel_size,groups,features',
    [(3, 4, 8), (5, 2, 8), (1, 8, 8), (3, 16, 16), (3, 16, 32)],
)
def test_grouped_conv_equals_lax_values_gradients_and_second_order(
    kernel_size, groups, features
):
  # The R1/R2 penalties' path too: the parameter gradient of a norm of the
  # input gradient.
  x = jnp.asarray(RNG.normal(size=(2, 6, 5, 16)), jnp.float32)  # Non-square.
  make = lambda **kw: nn.Conv(
      features,
      (kernel_size, kernel_size),
      padding='SAME',
      feature_group_count=groups,
      **kw,
  )
  reference = make()
  fast = make(conv_general_dilated=layers.conv_general_dilated)
  shapes = jax.eval_shape(reference.init, jax.random.key(0), x)
  assert jax.eval_shape(fast.init, jax.random.key(0), x) == shapes
  variables = _random_like(shapes)
  weights = jnp.asarray(RNG.normal(size=(2, 6, 5, features)), jnp.float32)

  @jax.jit
  def results(variables, x):
    out = []
    for module in (reference, fast):
      loss = lambda v, x, m=module: jnp.sum(weights * jnp.sin(m.apply(v, x)))
      penalty = lambda v, x, loss=loss: jnp.sum(
          jax.grad(loss, argnums=1)(v, x) ** 2
      )
      out.append(
          (
              module.apply(variables, x),
              jax.grad(loss, argnums=(0, 1))(variables, x),
              jax.grad(penalty, argnums=(0, 1))(variables, x),
          )
      )
    return out

  want, got = results(variables, x)
  assert got[0].shape == (2, 6, 5, features)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(
        g, w, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(w)))
    )


def _grouped_grad_program(groups: int, in_per_group: int) -> str:
  x = jnp.ones((2, 8, 8, groups * in_per_group))
  kernel = jnp.ones((3, 3, in_per_group, 16))
  fn = lambda x, k: jnp.sum(
      layers.conv_general_dilated(
          x,
          k,
          (1, 1),
          'SAME',
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
          feature_group_count=groups,
      )
      ** 2
  )
  penalty = lambda k, x: jnp.sum(jax.grad(fn)(x, k) ** 2)
  return jax.jit(jax.grad(penalty)).lower(kernel, x).as_text()


def _group_counts(text: str) -> set[tuple[str, int]]:
  """The (kind, count) of every feature/batch group count above 1."""
  counts = re.findall(r'(batch|feature)_group_count = (\d+)', text)
  return {(kind, int(n)) for kind, n in counts if int(n) > 1}


def test_grouped_conv_on_cpu_is_dense_convolutions_per_group():
  assert jax.default_backend() == 'cpu'
  # Forward, both gradients and the double backward: XLA:CPU's grouped
  # convolutions (feature or batch groups) are the slow ones.
  text = _grouped_grad_program(4, 4)
  assert 'stablehlo.convolution' in text
  assert not _group_counts(text)
  # The kernel gradient: per tap, one matmul per group, batched
  # over the groups.
  assert re.search(r'dot_general.*batching_dims = \[0\] x \[0\]', text)


def test_grouped_conv_keeps_native_grouped_kernels_off_cpu(monkeypatch):
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert _group_counts(_grouped_grad_program(4, 4)) == {
      ('feature', 4),
      ('batch', 4),
  }


def test_depthwise_conv_on_cpu_is_elementwise_except_its_kernel_gradient():
  text = _grouped_grad_program(16, 1)
  # Only the kernel gradient (lax's, the fastest form measured for it) is
  # a convolution; the penalty's derivatives of it are elementwise.
  assert _group_counts(text) == {('batch', 16)}
  assert text.count('stablehlo.convolution') == 1


def test_fast_conv_takes_the_phase_gradient_only_where_it_applies():
  x = jnp.ones((1, 8, 8, 16))

  def grad_program(x, strides=(2, 2), padding='SAME'):
    kernel = jnp.ones((4, 4, x.shape[-1], 2))
    fn = lambda x: jnp.sum(
        layers.conv_general_dilated(
            x,
            kernel,
            strides,
            padding,
            dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
        )
    )
    return jax.jit(jax.grad(fn)).lower(x).as_text()

  # lax's input gradient of a strided conv is an input-dilated conv.
  # StableHLO prints every convolution's dilation, so the value is matched.
  assert 'lhs_dilate = [2, 2]' not in grad_program(x)
  assert 'lhs_dilate = [2, 2]' in grad_program(x[..., :3])  # Few channels.
  assert 'lhs_dilate = [2, 2]' in grad_program(x[:, :7])  # Odd height.
  assert 'lhs_dilate = [2, 2]' in grad_program(x, padding='VALID')
  assert 'lhs_dilate = [2, 2]' not in grad_program(
      x, strides=(1, 1)
  )  # Plain lax.


def test_convolutions_compile_to_xla_not_ynnpack():
  # Importing catgan_jax sets the XLA:CPU flag (see catgan_jax/__init__.py);
  # without it XLA:CPU wraps a convolution this size in a YNNPACK fusion.
  fn = lambda x, w: jnp.sum(
      jax.lax.conv_general_dilated(
          x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
      )
  )
  text = (
      jax.jit(jax.grad(fn, argnums=(0, 1)))
      .lower(jnp.ones((8, 16, 16, 32)), jnp.ones((3, 3, 32, 32)))
      .compile()
      .as_text()
  )
  assert 'convolution(' in text
  assert '__ynn_fusion' not in text


def test_same_padding_sums_to_kernel_size():
  # lax.conv_transpose 'SAME' at stride 2: k=4 -> (2, 2); k=5 -> (3, 2).
  assert layers.same_padding_2x(4) == (2, 2)
  assert layers.same_padding_2x(5) == (3, 2)
  assert layers.same_padding_2x(2) == (1, 1)


def test_layer_norm_normalises_each_sample_over_all_features():

  class Wrapper(nn.Module):

    @nn.compact
    def __call__(self, x):
      return layers.normalize(x, 'layer', train=True, dtype=jnp.float32)

  x = jnp.asarray(RNG.normal(size=(3, 4, 4, 5)) * 7.0 + 2.0, jnp.float32)
  y, variables = jax.jit(Wrapper().init_with_output)(jax.random.key(0), x)
  assert 'batch_stats' not in variables
  np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
  np.testing.assert_allclose(y.std(axis=(1, 2, 3)), 1.0, atol=1e-3)


def test_config_checks_give_one_line_errors():
  with pytest.raises(ValueError, match=r"^model\.dtype='float16' is not"):
    layers.parse_dtype('float16')
  with pytest.raises(ValueError, match=r"^model\.d_norm='group' is not"):
    layers.resolve_d_norm('batch', 'group')
  with pytest.raises(ValueError, match=r"^model\.norm='layer' is not"):
    layers.resolve_d_norm('layer', '')
  assert layers.resolve_d_norm('selu', '') == 'selu'
  assert layers.resolve_d_norm('batch', 'layer') == 'layer'
  assert layers.scale_width(512, 8) == 64
  assert layers.scale_width(32, 1) == 1


class _SNDense(nn.Module):
  """A Dense layer with or without `layers.SpectralNorm`."""

  spectral_norm: bool

  @nn.compact
  def __call__(self, x, train):
    dense = nn.Dense(
        5,
        kernel_init=nn.initializers.normal(0.02),
        bias_init=nn.initializers.normal(0.1),
    )
    return layers.apply_layer(dense, x, self.spectral_norm, train)


def test_spectral_norm_stores_the_raw_weight_and_computes_with_w_over_sigma():
  """As torch's spectral_norm: param = weight_orig, forward = W / (u^T W v)."""
  x = jnp.asarray(RNG.normal(size=(3, 7)), jnp.float32)
  key = jax.random.PRNGKey(0)
  variables = _SNDense(True).init(key, x, train=False)
  plain = _SNDense(False).init(key, x, train=False)
  # The stored kernel is the initialiser's draw, not W / sigma (flax's
  # nn.SpectralNorm rescales it at init).
  np.testing.assert_array_equal(
      variables['params']['Dense_0']['kernel'],
      plain['params']['Dense_0']['kernel'],
  )
  stats = variables['batch_stats']['SpectralNorm_0']
  u0 = np.asarray(stats['Dense_0/kernel/u'], np.float64)
  np.testing.assert_allclose(np.linalg.norm(u0), 1.0, rtol=1e-6)

  y, updates = jax.jit(
      lambda v: _SNDense(True).apply(v, x, train=True, mutable=['batch_stats'])
  )(variables)
  # One power iteration by hand (torch: v = W^T u / |.|, u = W v / |.|, with
  # torch's W the transpose of this (in, out) kernel).
  w = np.asarray(variables['params']['Dense_0']['kernel'], np.float64)
  b = np.asarray(variables['params']['Dense_0']['bias'], np.float64)
  v = u0 @ w.T
  v /= np.linalg.norm(v)
  u = v @ w
  u /= np.linalg.norm(u)
  sigma = float((v @ w @ u.T)[0, 0])
  np.testing.assert_allclose(
      y, np.asarray(x) @ (w / sigma) + b, rtol=1e-4, atol=1e-6
  )
  new = updates['batch_stats']['SpectralNorm_0']
  np.testing.assert_allclose(new['Dense_0/kernel/u'], u, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(new['Dense_0/kernel/sigma'], sigma, rtol=1e-5)
  # The gradient reaches the raw kernel (through W / sigma, u and v fixed).
  grads = jax.grad(
      lambda p: jnp.sum(
          _SNDense(True).apply(
              {'params': p, 'batch_stats': variables['batch_stats']},
              x,
              train=False,
          )
      )
  )(variables['params'])
  assert float(jnp.max(jnp.abs(grads['Dense_0']['kernel']))) > 0
