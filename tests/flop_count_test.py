"""Tests of the benchmark's model FLOP count (benchmarks/flop_count.py)."""

import jax
from jax import lax
import jax.numpy as jnp
import pytest

from benchmarks import flop_count
from catgan_jax.models import layers

_NHWC = ('NHWC', 'HWIO', 'NHWC')
# A stride-2, 4x4 convolution, 8x8x16 -> 4x4x32, batch 2.
X = jax.ShapeDtypeStruct((2, 8, 8, 16), jnp.float32)
W = jax.ShapeDtypeStruct((4, 4, 16, 32), jnp.float32)
FORWARD = 2 * (2 * 4 * 4 * 32) * (4 * 4 * 16)  # 2 x outputs x taps x in.


def _lax_conv(x, w):
  return lax.conv_general_dilated(
      x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_NHWC
  )


def _phase_conv(x, w):
  return layers.conv_general_dilated(
      x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_NHWC
  )


@pytest.mark.parametrize('conv', [_lax_conv, _phase_conv])
def test_a_convolution_and_its_gradients_count_as_torch_counts(conv):
  assert flop_count.dense_flops(conv, X, W) == FORWARD
  loss = lambda x, w: jnp.sum(conv(x, w) ** 2)  # Its gradient needs y.
  # Each gradient costs one forward pass, whatever algorithm computes it
  # (lax's input-dilated convolution, or four phase convolutions).
  assert flop_count.dense_flops(jax.grad(loss, 1), X, W) == 2 * FORWARD
  assert flop_count.dense_flops(jax.grad(loss, 0), X, W) == 2 * FORWARD
  assert flop_count.dense_flops(jax.grad(loss, (0, 1)), X, W) == 3 * FORWARD


def test_a_matmul_counts_two_flops_per_multiply_add():
  a = jax.ShapeDtypeStruct((3, 5), jnp.float32)
  b = jax.ShapeDtypeStruct((5, 7), jnp.float32)
  assert flop_count.dense_flops(jnp.matmul, a, b) == 2 * 3 * 5 * 7


def test_unused_results_do_not_count():
  def f(x, w):
    _ = _lax_conv(x, w) * 2  # Dead: XLA removes it.
    return x.sum()

  assert flop_count.dense_flops(f, X, W) == 0
  # Nor a dead output of a jitted call.
  both = jax.jit(lambda x, w: (_lax_conv(x, w), x + 1))
  assert flop_count.dense_flops(lambda x, w: both(x, w)[1], X, W) == 0
  assert flop_count.dense_flops(lambda x, w: both(x, w)[0], X, W) == FORWARD


def test_a_scan_counts_its_body_length_times():
  def f(x, w):
    step = lambda c, _: (c, _lax_conv(x, w).sum())
    return lax.scan(step, 0.0, None, length=3)[1]

  assert flop_count.dense_flops(f, X, W) == 3 * FORWARD


def test_a_cond_counts_its_costliest_branch():
  def f(p, x, w):
    return lax.cond(p, lambda: _lax_conv(x, w).sum(), lambda: x.sum())

  p = jax.ShapeDtypeStruct((), jnp.bool_)
  assert flop_count.dense_flops(f, p, X, W) == FORWARD
