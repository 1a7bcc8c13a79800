"""DCGAN-64's train step taken apart: each layer's passes timed on their own.

    .venv/bin/python benchmarks/profile_layers.py --batch 64 \\
        --out benchmarks/results/cpu_dcgan64_layers.json

XLA:CPU runs a convolution asynchronously on its thread pool, so a trace of
the whole step shows when each convolution was started, not how long it
ran. This script compiles every piece of the DCGAN-64 step the step runs
(with the project's own layers: `layers.conv_general_dilated`'s stride-2
convolution and `layers.conv_transpose_2x`) as its own program and times
it (best of `--repeats` calls, so that the load on shared cores inflates
it as little as possible):

  * each convolution by direction: ``fwd``, ``dgrad`` (the input gradient)
    and ``wgrad`` (the weight gradient), with its dense FLOPs
    (`flop_count.dense_flops`) and GFLOP/s;
  * each BatchNorm (train mode: statistics and normalisation) forward and
    backward, each activation forward and backward;
  * Adam over G's and D's parameters (optax, as the step runs it).

Then it weighs each piece by how often one iteration of the step runs it
(D: forward on reals and fakes and again in G's update, weight gradients of
the two D passes only; G: one forward, its input gradients and weight
gradients once) and compares the sum with the measured step: the
difference is what the pieces in isolation leave out (the loss, RNG,
layout copies between the pieces, dispatch).
"""

import argparse
import functools
import json
import os
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from benchmarks import flop_count  # pylint: disable=g-import-not-at-top
from benchmarks import step_throughput as bench_lib  # pylint: disable=g-import-not-at-top
from catgan_jax.models import layers  # pylint: disable=g-import-not-at-top
import flax.linen as nn  # pylint: disable=g-import-not-at-top
import optax  # pylint: disable=g-import-not-at-top

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def best_time(
    fn: Callable[..., Any], args: tuple[Any, ...], repeats: int
) -> float:
  """Best wall time of `repeats` calls of the jitted `fn` (compiled first)."""
  jitted = jax.jit(fn)
  jax.block_until_ready(jitted(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(jitted(*args))
    times.append(time.perf_counter() - t0)
  return min(times)


def conv_pieces(x, w, conv):
  """fwd, dgrad, wgrad functions of `conv(x, w)` (VJPs of one cotangent)."""
  y = jax.eval_shape(conv, x, w)
  g = jnp.ones(y.shape, y.dtype) * 0.01
  fwd = lambda x, w: conv(x, w)
  dgrad = lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0]
  wgrad = lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0]
  return (fwd, (x, w)), (dgrad, (x, w, g)), (wgrad, (x, w, g))


def d_conv(x, w):
  return layers.conv_general_dilated(
      x, w, (2, 2), 'SAME', dimension_numbers=_NHWC
  )


def head_conv(x, w):
  return jax.lax.conv_general_dilated(
      x, w, (1, 1), 'VALID', dimension_numbers=_NHWC
  )


def g_conv(x, w):
  return layers.conv_transpose_2x(x, w, layers.same_padding_2x(4)[0])


def dense(x, w):
  return x @ w


def batchnorm_pieces(shape):
  """BatchNorm (train mode) forward and forward + backward at `shape`."""
  bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
  x = jax.random.normal(jax.random.key(0), shape)
  variables = bn.init(jax.random.key(1), x)

  def fwd(params, x):
    return bn.apply(
        {'params': params, 'batch_stats': variables['batch_stats']},
        x,
        mutable=['batch_stats'],
    )

  def fwd_bwd(params, x):
    out, pull = jax.vjp(lambda p, x: fwd(p, x)[0], params, x)
    return pull(jnp.ones_like(out) * 0.01)

  return (fwd, (variables['params'], x)), (fwd_bwd, (variables['params'], x))


def activation_pieces(shape, act):
  x = jax.random.normal(jax.random.key(0), shape)
  fwd = act
  fwd_bwd = lambda x: jax.vjp(act, x)[1](jnp.ones_like(x) * 0.01)[0]
  return (fwd, (x,)), (fwd_bwd, (x,))


def main(argv=None) -> dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--repeats', type=int, default=5)
  p.add_argument('--out', default='')
  args = p.parse_args(argv)
  b = args.batch
  key = jax.random.key(0)
  rnd = lambda *s: 0.02 * jax.random.normal(key, s)
  load_start = bench_lib._load()  # pylint: disable=protected-access
  rows = []

  def add(name, kind, direction, fn, fargs, per_step, flops=True):
    t = best_time(fn, fargs, args.repeats)
    f = flop_count.dense_flops(fn, *fargs) if flops else 0.0
    rows.append(
        {
            'piece': name,
            'kind': kind,
            'direction': direction,
            'ms': round(t * 1000, 2),
            'gflop': round(f / 1e9, 3),
            'gflop_per_s': round(f / t / 1e9, 1) if f else None,
            'per_step': per_step,
            'ms_per_step': round(t * 1000 * per_step, 1),
        }
    )
    print(json.dumps(rows[-1]), flush=True)

  # D: 3 forward passes (reals, fakes; fakes again in G's update); weight
  # gradients in the two D-update passes; input gradients wherever a
  # gradient flows further down: layers 1-4 in all three passes, layer 0
  # only in G's update (to the images).
  d_layers = [(64, 3, 64), (32, 64, 128), (16, 128, 256), (8, 256, 512)]
  for i, (s, cin, cout) in enumerate(d_layers):
    pieces = conv_pieces(rnd(b, s, s, cin), rnd(4, 4, cin, cout), d_conv)
    for (fn, fargs), direction, n in zip(
        pieces, ('fwd', 'dgrad', 'wgrad'), (3, 1 if i == 0 else 3, 2)
    ):
      add(f'D/Conv_{i} {s}px {cin}->{cout}', 'conv', direction, fn, fargs, n)
  pieces = conv_pieces(rnd(b, 4, 4, 512), rnd(4, 4, 512, 1), head_conv)
  for (fn, fargs), direction, n in zip(
      pieces, ('fwd', 'dgrad', 'wgrad'), (3, 3, 2)
  ):
    add('D/Conv_4 head 4px 512->1', 'conv', direction, fn, fargs, n)
  # G: one forward; input gradients of layers 1-3 (not of the first conv's
  # input... it is the Dense's output, so all of them) and weight
  # gradients once.
  pieces = conv_pieces(rnd(b, 100), rnd(100, 8192), dense)
  for (fn, fargs), direction, n in zip(
      pieces, ('fwd', 'dgrad', 'wgrad'), (1, 0, 1)
  ):
    add('G/Dense 100->4x4x512', 'dense', direction, fn, fargs, n)
  g_layers = [(4, 512, 256), (8, 256, 128), (16, 128, 64), (32, 64, 3)]
  for i, (s, cin, cout) in enumerate(g_layers):
    pieces = conv_pieces(rnd(b, s, s, cin), rnd(4, 4, cin, cout), g_conv)
    for (fn, fargs), direction, n in zip(
        pieces, ('fwd', 'dgrad', 'wgrad'), (1, 1, 1)
    ):
      add(
          f'G/ConvTranspose2x_{i} {s}->{2 * s}px {cin}->{cout}',
          'conv',
          direction,
          fn,
          fargs,
          n,
      )
  # BatchNorm: D's three BNs in three passes (backward in all three), G's
  # four once.
  for shape, n, net in [
      ((b, 16, 16, 128), 3, 'D'),
      ((b, 8, 8, 256), 3, 'D'),
      ((b, 4, 4, 512), 3, 'D'),
      ((b, 4, 4, 512), 1, 'G'),
      ((b, 8, 8, 256), 1, 'G'),
      ((b, 16, 16, 128), 1, 'G'),
      ((b, 32, 32, 64), 1, 'G'),
  ]:
    (fwd, fa), (fb, fba) = batchnorm_pieces(shape)
    # Every BatchNorm pass of the step is differentiated: the forward's
    # time alone is listed, but only forward + backward is counted.
    add(f'{net}/BatchNorm {shape[1:]}', 'batchnorm', 'fwd', fwd, fa, 0, False)
    add(
        f'{net}/BatchNorm {shape[1:]}',
        'batchnorm',
        'fwd+bwd',
        fb,
        fba,
        n,
        False,
    )
  leaky = functools.partial(nn.leaky_relu, negative_slope=0.2)
  for shape, act, n, name in [
      ((b, 32, 32, 64), leaky, 3, 'D/LeakyReLU'),
      ((b, 16, 16, 128), leaky, 3, 'D/LeakyReLU'),
      ((b, 8, 8, 256), leaky, 3, 'D/LeakyReLU'),
      ((b, 4, 4, 512), leaky, 3, 'D/LeakyReLU'),
      ((b, 4, 4, 512), nn.relu, 1, 'G/ReLU'),
      ((b, 8, 8, 256), nn.relu, 1, 'G/ReLU'),
      ((b, 16, 16, 128), nn.relu, 1, 'G/ReLU'),
      ((b, 32, 32, 64), nn.relu, 1, 'G/ReLU'),
      ((b, 64, 64, 3), jnp.tanh, 1, 'G/tanh'),
  ]:
    (fwd, fa), (fb, fba) = activation_pieces(shape, act)
    add(f'{name} {shape[1:]}', 'activation', 'fwd+bwd', fb, fba, n, False)
  # Adam over both networks' parameters (the peer's settings).
  config = bench_lib.peer_matched_config(
      bench_lib.load_config(os.path.join(_REPO, 'configs', 'dcgan64.py')),
      b,
      'float32',
  )
  from catgan_jax import models  # pylint: disable=g-import-not-at-top

  g, d = models.create_models(config)
  for net, module, x in (
      ('G', g, jnp.zeros((b, 100))),
      ('D', d, jnp.zeros((b, 64, 64, 3))),
  ):
    params = module.init(jax.random.key(0), x, train=False)['params']
    tx = optax.adam(2e-4, 0.5, 0.999)
    opt = tx.init(params)
    grads = jax.tree.map(lambda a: a * 0.5, params)

    def adam_step(params, opt, grads, tx=tx):
      updates, opt = tx.update(grads, opt, params)
      return optax.apply_updates(params, updates), opt

    add(
        f'{net}/Adam',
        'adam',
        'update',
        adam_step,
        (params, opt, grads),
        1,
        False,
    )
  total = sum(r['ms_per_step'] for r in rows)
  by_kind = {}
  for r in rows:
    key_ = r['kind'] + ('' if r['kind'] != 'conv' else ':' + r['direction'])
    by_kind[key_] = round(by_kind.get(key_, 0.0) + r['ms_per_step'], 1)
  conv_ms = sum(
      r['ms_per_step'] for r in rows if r['kind'] in ('conv', 'dense')
  )
  conv_gflop = sum(
      r['gflop'] * r['per_step'] for r in rows if r['kind'] in ('conv', 'dense')
  )
  result = {
      'command': ' '.join(
          ['benchmarks/profile_layers.py']
          + (sys.argv[1:] if argv is None else argv)
      ),
      'machine': bench_lib.machine_info(),
      'code_sha256': bench_lib.code_digest(),
      'matmul_tflops_f32': round(bench_lib.matmul_tflops(), 4),
      'batch': b,
      'load_start': load_start,
      'sum_ms_per_step': round(total, 1),
      'by_kind_ms_per_step': by_kind,
      'conv_gflop_per_step': round(conv_gflop, 2),
      'conv_gflop_per_s': round(conv_gflop / (conv_ms / 1000), 1),
      'pieces': rows,
      'load_end': bench_lib._load(),  # pylint: disable=protected-access
  }
  print(
      json.dumps({k: v for k, v in result.items() if k != 'pieces'}, indent=1)
  )
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=1)
      f.write('\n')
  return result


if __name__ == '__main__':
  main()
