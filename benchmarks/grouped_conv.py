"""Speed of the grouped convolution per direction, against a dense one.

    .venv/bin/python benchmarks/grouped_conv.py --repeats 3 \\
        --out benchmarks/results/cpu_grouped_conv.json

For each layer shape (batch, size, channels, channels per group; default
R3GAN-64's grouped 3x3 convolutions at an eighth of its width, batch 32)
times four directions of one jitted function:

  * `forward`: the convolution;
  * `input_grad`: the input gradient (vjp in the inputs);
  * `kernel_grad`: the kernel gradient (vjp in the kernel);
  * `double_backward`: the kernel gradient of the squared norm of the input
    gradient, as an R1 / R2 penalty takes it (two convolutions' FLOPs:
    the input gradient and its kernel gradient),

for four implementations: lax's grouped convolution
(``feature_group_count``), `layers.grouped_conv` (what the models run),
`lax_map_kernel_grad` (the same with its previous kernel gradient: a dense
convolution's kernel gradient per group in a lax.map, for the record), and
a dense convolution with the same FLOPs (channels / sqrt(groups)), which
is the rate to reach. Implementations alternate within each repeat, and
the best time of each over the repeats is reported with its GFLOP/s and
the load averages before and after.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import time
from typing import Any, Callable

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from catgan_jax import cli  # pylint: disable=g-import-not-at-top

cli.configure()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from jax import lax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from catgan_jax.models import layers  # pylint: disable=g-import-not-at-top,wrong-import-position

# (batch, size, channels, channels per group) of R3GAN-64's grouped convs
# at g_width = d_width = 8, batch 32 (hidden widths 96 at 64 px, 192 below),
# and one depthwise layer.
DEFAULT_SHAPES = ('32,64,96,16', '32,32,192,16', '32,16,192,16', '32,32,96,1')
# Convolutions per direction, for GFLOP/s.
CONVS = {
    'forward': 1,
    'input_grad': 1,
    'kernel_grad': 1,
    'double_backward': 2,
}


def _lax_grouped(x, kernel, groups):
  return lax.conv_general_dilated(
      x,
      kernel,
      (1, 1),
      'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=groups,
  )


def _lax_map_kernel_grad_parts(inputs, grad, kernel_size, groups):
  """The previous kernel gradient: a dense conv's per group, in a lax.map."""
  cin, k = inputs.shape[-1] // groups, kernel_size
  if cin == 1:
    return _current_kernel_grad_parts(inputs, grad, kernel_size, groups)

  def dense_kernel_grad(x, g):
    zero = jnp.zeros((k, k, cin, g.shape[-1]), x.dtype)
    conv = lambda kk: layers._dense_same_conv(x, kk)  # pylint: disable=protected-access
    return jax.linear_transpose(conv, zero)(g)[0]

  return layers._per_group(dense_kernel_grad, inputs, grad, groups)  # pylint: disable=protected-access


_current_kernel_grad_parts = layers._grouped_kernel_grad_parts  # pylint: disable=protected-access


@contextlib.contextmanager
def _kernel_grad(name: str):
  """While tracing `name`'s functions: its kernel gradient in place."""
  if name == 'lax_map_kernel_grad':
    layers._grouped_kernel_grad_parts = _lax_map_kernel_grad_parts  # pylint: disable=protected-access
  try:
    yield
  finally:
    layers._grouped_kernel_grad_parts = _current_kernel_grad_parts  # pylint: disable=protected-access


IMPLEMENTATIONS = {
    'lax_grouped': _lax_grouped,
    'grouped_conv': layers.grouped_conv,
    'lax_map_kernel_grad': layers.grouped_conv,
    'dense_same_flops': lambda x, kernel, groups: _lax_grouped(x, kernel, 1),
}


def directions(conv: Callable[..., jax.Array], groups: int) -> dict[str, Any]:
  """The four jitted directions of `conv`, each taking (x, kernel, ct)."""

  def input_grad(x, kernel, ct):
    return jax.vjp(lambda x: conv(x, kernel, groups), x)[1](ct)[0]

  def penalty(kernel, x, ct):
    return jnp.sum(input_grad(x, kernel, ct) ** 2)

  return {
      'forward': jax.jit(lambda x, kernel, ct: conv(x, kernel, groups)),
      'input_grad': jax.jit(input_grad),
      'kernel_grad': jax.jit(
          lambda x, kernel, ct: jax.vjp(lambda k: conv(x, k, groups), kernel)[
              1
          ](ct)[0]
      ),
      'double_backward': jax.jit(
          lambda x, kernel, ct: jax.grad(penalty)(kernel, x, ct)
      ),
  }


def _arrays(batch, size, channels, in_per_group, rng):
  return [
      jnp.asarray(rng.normal(size=shape), jnp.float32)
      for shape in (
          (batch, size, size, channels),
          (3, 3, in_per_group, channels),
          (batch, size, size, channels),
      )
  ]


def bench_shape(shape: str, repeats: int) -> dict[str, Any]:
  """Times every implementation and direction at one layer shape."""
  batch, size, channels, per_group = map(int, shape.split(','))
  groups = channels // per_group
  dense = round(channels / math.sqrt(groups))
  rng = np.random.default_rng(0)
  cases = {}
  for name, conv in IMPLEMENTATIONS.items():
    is_dense = name == 'dense_same_flops'
    c, g = (dense, 1) if is_dense else (channels, groups)
    args = _arrays(batch, size, c, c // g, rng)
    fns = directions(conv, g)
    with _kernel_grad(name):
      for fn in fns.values():
        jax.block_until_ready(fn(*args))  # Compile (trace) once.
    cases[name] = (fns, args, 2 * batch * size * size * 9 * c * c // g)
  times = {n: {d: [] for d in CONVS} for n in cases}
  load_before = [round(x, 2) for x in os.getloadavg()]
  for _ in range(repeats):
    for name, (fns, args, _) in cases.items():
      for direction, fn in fns.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times[name][direction].append(time.perf_counter() - t0)
  result = {
      'shape': {
          'batch': batch,
          'size': size,
          'channels': channels,
          'groups': groups,
          'dense_channels': dense,
      },
      'load_before': load_before,
      'load_after': [round(x, 2) for x in os.getloadavg()],
  }
  for name, (_, _, flops) in cases.items():
    result[name] = {
        d: {
            'ms': round(1e3 * min(times[name][d]), 2),
            'gflops': round(CONVS[d] * flops / min(times[name][d]) / 1e9, 1),
        }
        for d in CONVS
    }
  return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument(
      '--shape',
      action='append',
      help='batch,size,channels,channels_per_group (repeatable)',
  )
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--out', default='')
  args = p.parse_args(argv)
  record = {
      'command': ' '.join(
          ['benchmarks/grouped_conv.py']
          + (sys.argv[1:] if argv is None else argv)
      ),
      'platform': jax.devices()[0].platform,
      'jax': jax.__version__,
      'cpu_count': os.cpu_count(),
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'shapes': [],
  }
  for shape in args.shape or DEFAULT_SHAPES:
    result = bench_shape(shape, args.repeats)
    print(json.dumps(result), flush=True)
    record['shapes'].append(result)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
      json.dump(record, f, indent=1)
      f.write('\n')
  return record


if __name__ == '__main__':
  main()
