"""Train-step throughput of catgan_jax, side by side with the PyTorch DCGAN.

    .venv/bin/python benchmarks/step_throughput.py --batch 64 \\
        --peer /tmp/torch/bin/python --peer-script /path/to/peer_torch_dcgan.py \\
        --out benchmarks/results/cpu.json

Builds catgan_jax's real train step for a config (default dcgan64, with the
optimiser of the PyTorch reference: Adam 2e-4, beta1 0.5 for both networks),
jits and compiles it exactly as the trainer does (mesh, shardings, donated
state), and measures:

  * compile time: lower + compile of the step, in seconds;
  * steady-state throughput: real images per second over `--iters` steps
    after `--warmup` steps, on one fixed device batch (so the input pipeline
    is not measured), synchronising with the device only after the last step;
  * model FLOPs per step (`flop_count.dense_flops`: every convolution and
    matmul the step runs, counted dense as torch's FlopCounterMode counts
    the peer's), and the model FLOP utilisation against `--peak-tflops`;
    on CPU, when it is not given, against the measured rate of a large
    float32 matmul (the machine's practical ceiling), for both systems.
    XLA's cost analysis of the compiled step is reported beside it
    (`xla_flops_per_step`); it is not a model count (see flop_count).

With `--peer PYTHON` the PyTorch reference step (`peer_torch_dcgan.py`) runs
under that interpreter in the same invocation, after each catgan_jax
measurement (never at the same time), and the ratio catgan_jax / peer of
images per second is reported. `--loss wgan_gp` also measures the WGAN-GP
step (the config's model, gradient penalty 10, so a double backward through
D) and its step time relative to the config's own step.

`--model r3gan` measures R3GAN instead (`configs/r3gan64.py` at
`--width` / 64 of its channels, default 8, batch 32 by default): its own
loss (RpGAN + gamma/2 (R1 + R2), every step) and optimiser (Adam beta1 0),
augmentation off, against the PyTorch peer of the reference iteration
(`tools/torch_peer/peer_r3gan.py`, the same widths; its parameter counts
are checked against ours).

    .venv/bin/python benchmarks/step_throughput.py --model r3gan \
        --iters 2 --repeats 3 --peer /tmp/torch/bin/python \
        --peer-script tools/torch_peer/peer_r3gan.py \
        --out benchmarks/results/cpu_r3gan64_w8.json

`--reg-every k` (R3GAN) measures lazy regularisation (loss.reg_every): the
program of the step with R1 + R2 and the one without are timed in turn and
the step time is their mean over k steps ((k - 1) plain + 1 regularising);
the peer still regularises every step, as the reference R3GAN does.
`--compare-dtype bfloat16` also times the step in that dtype, alternating
with the `--dtype` one in each repeat (the peer in its `--dtype`).
`--override field=value` changes config fields (a dry run at 16 px, say).

One JSON object per system and the ratio are printed; `--out` writes them,
with the machine and the command line, to a JSON file.
"""

import argparse
import glob
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

# The benchmark runs from the repository root or from benchmarks/.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from benchmarks import flop_count  # pylint: disable=g-import-not-at-top
from catgan_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from catgan_jax import parallel  # pylint: disable=g-import-not-at-top
from catgan_jax import step as step_lib  # pylint: disable=g-import-not-at-top
from catgan_jax import train  # pylint: disable=g-import-not-at-top

cli.configure()

# The PyTorch DCGAN recipe's optimiser, for both networks.
PEER_LR, PEER_B1, PEER_B2 = 2e-4, 0.5, 0.999
GP_WEIGHT = 10.0
# Targets of the benchmark (the README's "Performance" section).
TARGET_CPU_RATIO = 1.5
TARGET_GPU_RATIO = 2.0
TARGET_COMPILE_S = 20.0
TARGET_GPU_BF16_MFU = 0.4
TARGET_WGAN_GP_STEP_RATIO = 2.5
TARGET_CPU_MFU = 0.6  # R3GAN's step against the f32 matmul rate.
R3GAN_CONFIG = os.path.join(_REPO, 'configs', 'r3gan64.py')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  """Command-line options (hyphens and underscores are both accepted)."""
  p = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawTextHelpFormatter,
  )
  add = lambda name, **kw: p.add_argument(
      f'--{name}',
      *([f'--{name.replace("-", "_")}'] if '-' in name else []),
      **kw,
  )
  add(
      'model',
      default='dcgan',
      choices=['dcgan', 'r3gan'],
      help="dcgan: --config's model with the PyTorch DCGAN's optimiser; "
      "r3gan: configs/r3gan64.py's step at --width (its own loss, "
      'R1 + R2 and optimiser)',
  )
  add(
      'config',
      default='',
      help='experiment config file (its model is benchmarked; default '
      'configs/dcgan64.py, or configs/r3gan64.py with --model r3gan)',
  )
  add(
      'width',
      type=int,
      default=8,
      help="--model r3gan: g_width = d_width (64 = the config's channels)",
  )
  add(
      'batch',
      type=int,
      action='append',
      help='global batch size; repeat for several sizes (default 64, '
      '32 with --model r3gan)',
  )
  add('iters', type=int, default=10, help='timed steps per repeat')
  add('warmup', type=int, default=2, help='untimed steps after compiling')
  add(
      'repeats',
      type=int,
      default=1,
      help='timed loops per system, alternating catgan_jax and the peer; '
      'the median is reported',
  )
  add(
      'dtype',
      default='float32',
      choices=['float32', 'bfloat16'],
      help='compute dtype of both networks (params stay float32)',
  )
  add(
      'loss',
      default='',
      help="also time this loss's step with the same "
      'model, e.g. wgan_gp (gradient penalty 10)',
  )
  add(
      'peak-tflops',
      type=float,
      default=0.0,
      help='peak TFLOP/s of one device, for MFU (0 = on CPU, the measured '
      'float32 matmul rate; elsewhere no MFU)',
  )
  add(
      'peer',
      default='',
      help='python interpreter with torch: also run the '
      'PyTorch reference step',
  )
  add(
      'peer-script',
      default='',
      help='the PyTorch reference step script (needed with --peer)',
  )
  add(
      'peer-device',
      default='cpu',
      choices=['cpu', 'cuda'],
      help='device of the PyTorch peer',
  )
  add(
      'peer-threads',
      type=int,
      default=0,
      help='torch intra-op threads of the peer (0 = torch default)',
  )
  add(
      'compare-dtype',
      default='',
      choices=['', 'float32', 'bfloat16'],
      help='also time the same step in this dtype, alternating with the '
      '--dtype one within each repeat; reports the step time ratio',
  )
  add(
      'reg-every',
      type=int,
      default=1,
      help='--model r3gan: loss.reg_every (R1 + R2 on every k-th D step, '
      'weight x k); the step time is the mean over k steps',
  )
  add(
      'override',
      action='append',
      default=[],
      help='config field=value (JSON value), repeatable, e.g. '
      'data.image_size=16 for a tiny dry run',
  )
  add('out', default='', help='write the results to this JSON file')
  args = p.parse_args(argv)
  args.batch = args.batch or [32 if args.model == 'r3gan' else 64]
  if not args.config:
    args.config = (
        R3GAN_CONFIG
        if args.model == 'r3gan'
        else os.path.join(_REPO, 'configs', 'dcgan64.py')
    )
  return args


def load_config(
    path: str, overrides: list[str] = ()
) -> ml_collections.ConfigDict:
  """Runs `get_config()` of a config file, then applies `field=value`s."""
  spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for item in overrides:
    field, _, text = item.partition('=')
    *parents, leaf = field.split('.')
    node = config
    for part in parents:
      node = node[part]
    old = node[leaf]
    node[leaf] = text if isinstance(old, str) else type(old)(json.loads(text))
  return config


def peer_matched_config(
    config: ml_collections.ConfigDict, batch: int, dtype: str, loss: str = ''
) -> ml_collections.ConfigDict:
  """A copy of `config` with the peer's optimiser, `batch` and `dtype`.

  Args:
    config: the experiment config whose model is benchmarked.
    batch: global batch size.
    dtype: compute dtype name of both networks.
    loss: a loss name to use instead of the config's ('' = keep it); a
      penalised loss ('wgan_gp') gets its gradient penalty weight.

  Returns:
    The benchmark config.
  """
  config = config.copy_and_resolve_references()
  config.batch_size = batch
  config.model.dtype = dtype
  for net in ('g', 'd'):
    config.optim[f'{net}_name'] = 'adam'
    config.optim[f'{net}_lr'] = PEER_LR
    config.optim[f'{net}_b1'] = PEER_B1
    config.optim[f'{net}_b2'] = PEER_B2
  if loss:
    config.loss.name = loss
    if loss == 'wgan_gp':
      config.loss.gp_weight = GP_WEIGHT
  return config


def r3gan_config(
    config: ml_collections.ConfigDict,
    batch: int,
    dtype: str,
    width: int,
    reg_every: int = 1,
) -> ml_collections.ConfigDict:
  """The R3GAN config at `width` / 64 of its channels, augmentation off.

  Keeps the recipe's loss (RpGAN + gamma/2 (R1 + R2) on every step unless
  `reg_every` > 1), its optimiser and its G phase's fresh z and reals; the
  peer has no augmentation pipe, so neither does this step.
  """
  config = config.copy_and_resolve_references()
  config.loss.reg_every = reg_every
  config.batch_size = batch
  config.model.dtype = dtype
  config.model.g_width = width
  config.model.d_width = width
  config.data.diffaugment = ''
  if 'augment' in config.data:
    config.data.augment = 'diffaugment'
  config.data.ada_target = 0.0
  return config


def r3gan_widths(config: ml_collections.ConfigDict) -> list[int]:
  """G's channels per stage from 4x4 up, as the model builds them."""
  from catgan_jax.models import layers  # pylint: disable=g-import-not-at-top

  stages = layers.num_doublings(config.data.image_size, 4) + 1
  return [
      layers.scale_width(w, config.model.g_width)
      for w in config.model.r3gan_widths[:stages]
  ]


def _param_count(params: Any) -> int:
  return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def _load() -> list[float]:
  return [round(x, 2) for x in os.getloadavg()]


def _xla_flops(compiled: Any) -> float:
  """FLOPs of one call of a compiled function, from XLA's cost analysis."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older jax: one dict per program.
    cost = cost[0] if cost else {}
  return float((cost or {}).get('flops', 0.0))


class StepBench:
  """A compiled catgan_jax train step, its state and one device batch."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.batch = config.batch_size
    self.input_batch = step_lib.input_batch_size(config)
    mesh = parallel.create_mesh()
    run = train.build(config, mesh)
    generator, discriminator = run.generator, run.discriminator
    self.state, self.step = run.state, run.train_step
    jax.block_until_ready(self.state)
    t0 = time.perf_counter()
    self.step.precompile(0)
    self.compile_s = time.perf_counter() - t0
    # With lazy regularisation: the programs of a step with and without
    # the penalties, each timed on its own (`_measure`).
    self.reg_every = step_lib.reg_every(config)
    self.phases = sorted(
        {step_lib.update_phase(config, s) for s in range(self.reg_every)},
        key=lambda phase: not phase.regularize_d,
    )
    t0 = time.perf_counter()
    for phase in self.phases[1:]:
      self.step.program(phase)
    self.compile_other_s = time.perf_counter() - t0
    size = config.data.image_size
    images = np.random.default_rng(0).integers(
        0, 256, (self.input_batch, size, size, 3), dtype=np.uint8
    )
    self.images = jax.device_put(images, parallel.batch_sharded(mesh))
    # Model FLOPs (FlopCounterMode's convention, as the peer's count) for
    # MFU; XLA's own count of the compiled program for reference.
    self.flops_per_step = flop_count.dense_flops(
        step_lib.make_train_step(config, generator, discriminator),
        self.state,
        self.images,
    )
    self.xla_flops_per_step = _xla_flops(self.step.program((True, True)))
    self.params_g = _param_count(self.state.g.params)
    self.params_d = _param_count(self.state.d.params)
    self.metrics = None
    self.steps_done = 0

  def run(self, steps: int, phase: step_lib.Phase | None = None) -> float:
    """Runs `steps` steps (of `phase`'s program if given); wall seconds."""
    t0 = time.perf_counter()
    state, metrics = self.state, None
    for _ in range(steps):
      if phase is None:
        state, metrics = self.step(state, self.images, self.steps_done)
      else:
        state, metrics = self.step.program(phase)(state, self.images)
      self.steps_done += 1
    jax.block_until_ready((state, metrics))
    self.state, self.metrics = state, metrics
    return time.perf_counter() - t0


def run_peer(
    args: argparse.Namespace,
    batch: int,
    config: ml_collections.ConfigDict | None = None,
) -> dict[str, Any]:
  """Runs the PyTorch reference step once; returns its JSON line as a dict.

  With --model r3gan, `config` gives the peer its architecture and gamma.
  """
  cmd = [
      args.peer,
      args.peer_script,
      '--batch',
      str(batch),
      '--iters',
      str(args.iters),
      '--warmup',
      str(args.warmup),
      '--device',
      args.peer_device,
  ]
  if args.peer_threads:
    cmd += ['--threads', str(args.peer_threads)]
  if args.model == 'r3gan':
    model = config.model
    cmd += [
        '--widths',
        ','.join(map(str, r3gan_widths(config))),
        '--group-channels',
        str(model.r3gan_group_channels),
        '--blocks',
        str(model.r3gan_blocks),
        '--expansion',
        str(model.r3gan_expansion),
        '--z-dim',
        str(model.z_dim),
        '--gamma',
        str(config.loss.r1_weight),
        '--dtype',
        model.dtype,
    ]
  load = _load()
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('{')]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(
        f'The peer failed (exit {proc.returncode}): '
        f'{" ".join(cmd)}\n{proc.stderr[-2000:]}'
    )
  result = json.loads(lines[-1])
  result['load_before'] = load
  return result


def matmul_tflops(n: int = 2048, repeats: int = 5) -> float:
  """Float32 TFLOP/s of one large jitted matmul on the default device.

  A CPU has no datasheet peak that its BLAS reaches; the best of a few
  2048^3 matmuls is the practical ceiling any convolution network's step
  can approach there, so CPU MFU is reported against it.
  """
  a = jax.numpy.ones((n, n), jax.numpy.float32)
  matmul = jax.jit(lambda a: a @ a)
  jax.block_until_ready(matmul(a))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(matmul(a))
    times.append(time.perf_counter() - t0)
  return 2 * n**3 / min(times) / 1e12


def _mfu(
    flops_per_step: float, s_per_step: float, peak_tflops: float
) -> float | None:
  if peak_tflops <= 0 or flops_per_step <= 0:
    return None
  return round(flops_per_step / s_per_step / (peak_tflops * 1e12), 4)


def _measure(
    bench: StepBench, args: argparse.Namespace, between=None
) -> dict[str, Any]:
  """Warms up, times `args.repeats` loops (calling `between` after each)."""
  bench.run(args.warmup)
  extra = {}
  if len(bench.phases) == 1:
    times = []
    for _ in range(args.repeats):
      times.append(bench.run(args.iters))
      if between is not None:
        between()
    s_per_step = statistics.median(times) / args.iters
  else:
    # Lazy regularisation: k - 1 steps of the plain program for one of the
    # regularising one; each timed `iters` steps per repeat, alternating.
    reg, plain = bench.phases[0], bench.phases[-1]
    for phase in (reg, plain):
      bench.run(args.warmup, phase)
    per = {'reg': [], 'plain': []}
    for _ in range(args.repeats):
      per['reg'].append(bench.run(args.iters, reg) / args.iters)
      per['plain'].append(bench.run(args.iters, plain) / args.iters)
      if between is not None:
        between()
    k = bench.reg_every
    times = [
        args.iters * ((k - 1) * p + r) / k
        for r, p in zip(per['reg'], per['plain'])
    ]
    s_per_step = statistics.median(times) / args.iters
    extra = {
        'reg_every': k,
        's_per_step_reg': round(statistics.median(per['reg']), 5),
        's_per_step_plain': round(statistics.median(per['plain']), 5),
        'compile_plain_s': round(bench.compile_other_s, 2),
    }
  finite = bool(np.asarray(jax.device_get(bench.metrics['finite'])))
  return {
      'images_per_s': round(bench.batch / s_per_step, 2),
      's_per_step': round(s_per_step, 5),
      'images_per_s_all': [
          round(bench.batch * args.iters / t, 2) for t in times
      ],
      **extra,
      'compile_s': round(bench.compile_s, 2),
      'flops_per_step': bench.flops_per_step,
      'xla_flops_per_step': bench.xla_flops_per_step,
      # flops_per_step is the global batch's, spread over every device.
      'mfu': _mfu(
          bench.flops_per_step,
          s_per_step,
          args.peak_tflops * jax.device_count(),
      ),
      'finite': finite,
      'params_g': bench.params_g,
      'params_d': bench.params_d,
  }


def _catgan_jax(
    args: argparse.Namespace, config: ml_collections.ConfigDict, between=None
) -> dict[str, Any]:
  load_start = _load()
  bench = StepBench(config)
  result = {
      'system': 'catgan_jax',
      'model': config.model.name,
      'loss': config.loss.name,
      'dtype': config.model.dtype,
      'batch': config.batch_size,
      'devices': jax.device_count(),
      **_measure(bench, args, between),
      'load_start': load_start,
      'load_end': _load(),
  }
  print(json.dumps(result), flush=True)
  return result


def bench_batch(
    args: argparse.Namespace, base: ml_collections.ConfigDict, batch: int
) -> dict[str, Any]:
  """Measures catgan_jax (and the peer, and the extra loss) at one batch."""
  peer_runs, other_times = [], []

  def make_config(dtype):
    if args.model == 'r3gan':
      return r3gan_config(base, batch, dtype, args.width, args.reg_every)
    return peer_matched_config(base, batch, dtype)

  config = make_config(args.dtype)
  other = None
  if args.compare_dtype and args.compare_dtype != args.dtype:
    other = StepBench(make_config(args.compare_dtype))
    other.run(args.warmup)

  def between():
    if other is not None:
      other_times.append(other.run(args.iters))
    if args.peer:
      peer_runs.append(run_peer(args, batch, config))

  record = {'batch': batch, 'catgan_jax': _catgan_jax(args, config, between)}
  if other is not None:
    s_per_step = statistics.median(other_times) / args.iters
    record[f'catgan_jax_{args.compare_dtype}'] = {
        'dtype': args.compare_dtype,
        'images_per_s': round(batch / s_per_step, 2),
        's_per_step': round(s_per_step, 5),
        'images_per_s_all': [
            round(batch * args.iters / t, 2) for t in other_times
        ],
        'compile_s': round(other.compile_s, 2),
        'mfu': _mfu(
            other.flops_per_step,
            s_per_step,
            args.peak_tflops * jax.device_count(),
        ),
        'finite': bool(np.asarray(jax.device_get(other.metrics['finite']))),
    }
    key = f'step_time_ratio_{args.compare_dtype}'
    record[key] = round(s_per_step / record['catgan_jax']['s_per_step'], 3)
    print(json.dumps({'batch': batch, key: record[key]}), flush=True)
  if peer_runs:
    speeds = [p['images_per_s'] for p in peer_runs]
    peer = dict(
        peer_runs[0],
        images_per_s=statistics.median(speeds),
        images_per_s_all=speeds,
        load_before=[p['load_before'] for p in peer_runs],
    )
    peer['s_per_iter'] = round(batch / peer['images_per_s'], 5)
    peer['mfu'] = _mfu(
        peer.get('flops_per_iter', 0), peer['s_per_iter'], args.peak_tflops
    )
    print(json.dumps(peer), flush=True)
    record['peer'] = peer
    if args.model == 'r3gan':
      # Built from our widths: the same networks when the counts agree.
      record['peer_same_model'] = (
          peer.get('params_g'),
          peer.get('params_d'),
      ) == (record['catgan_jax']['params_g'], record['catgan_jax']['params_d'])
    else:
      # The DCGAN peer is always the 64 px DCGAN (z 100, widths 64); other
      # configs get a ratio, but it compares different networks.
      record['peer_same_model'] = (
          config.model.name == 'dcgan'
          and config.data.image_size == 64
          and config.model.z_dim == 100
          and config.model.g_width == 64
          and config.model.d_width == 64
          and config.model.norm == 'batch'
      )
    record['ratio'] = round(
        record['catgan_jax']['images_per_s'] / peer['images_per_s'], 3
    )
    ours = record['catgan_jax']
    if args.peak_tflops > 0 and ours['flops_per_step'] > 0:
      # The ratio if every FLOP of our step ran at the peak rate: the most
      # any implementation of this step (these FLOPs) could reach here.
      best_images_per_s = (
          args.peak_tflops
          * jax.device_count()
          * 1e12
          / ours['flops_per_step']
          * batch
      )
      record['ratio_at_peak'] = round(
          best_images_per_s / peer['images_per_s'], 3
      )
    print(json.dumps({'batch': batch, 'ratio': record['ratio']}), flush=True)
  if args.loss and args.model != 'r3gan':
    other = _catgan_jax(
        args, peer_matched_config(base, batch, args.dtype, args.loss)
    )
    key = f'step_time_ratio_{args.loss}'
    record[f'catgan_jax_{args.loss}'] = other
    record[key] = round(
        other['s_per_step'] / record['catgan_jax']['s_per_step'], 3
    )
    print(json.dumps({'batch': batch, key: record[key]}), flush=True)
  return record


def check_targets(
    record: dict[str, Any], platform_name: str, dtype: str
) -> dict[str, bool]:
  """Which of the benchmark's targets one batch size's record meets."""
  ours, checks = record['catgan_jax'], {}
  if platform_name == 'cpu' and ours['model'] != 'r3gan':
    checks[f'compile_s <= {TARGET_COMPILE_S:g}'] = (
        ours['compile_s'] <= TARGET_COMPILE_S
    )
  if record.get('peer_same_model'):
    target = TARGET_CPU_RATIO if platform_name == 'cpu' else TARGET_GPU_RATIO
    checks[f'ratio >= {target:g}'] = record['ratio'] >= target
  if (
      platform_name != 'cpu'
      and dtype == 'bfloat16'
      and record['batch'] >= 256
      and ours['mfu'] is not None
  ):
    checks[f'mfu >= {TARGET_GPU_BF16_MFU:g}'] = (
        ours['mfu'] >= TARGET_GPU_BF16_MFU
    )
  if (
      platform_name == 'cpu'
      and ours['model'] == 'r3gan'
      and ours['mfu'] is not None
  ):
    checks[f'mfu >= {TARGET_CPU_MFU:g}'] = ours['mfu'] >= TARGET_CPU_MFU
  if 'step_time_ratio_wgan_gp' in record:
    checks[f'step_time_ratio_wgan_gp <= {TARGET_WGAN_GP_STEP_RATIO:g}'] = (
        record['step_time_ratio_wgan_gp'] <= TARGET_WGAN_GP_STEP_RATIO
    )
  return checks


def code_digest() -> str:
  """SHA-256 of catgan_jax's sources: tells which code a result measured."""
  digest = hashlib.sha256()
  for path in sorted(
      glob.glob(os.path.join(_REPO, 'catgan_jax', '**', '*.py'), recursive=True)
  ):
    digest.update(os.path.relpath(path, _REPO).encode())
    with open(path, 'rb') as f:
      digest.update(f.read())
  return digest.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
  """What the numbers were measured on."""
  cpu = platform.processor()
  try:
    with open('/proc/cpuinfo') as f:
      names = [
          l.split(':', 1)[1].strip() for l in f if l.startswith('model name')
      ]
    cpu = names[0] if names else cpu
  except OSError:
    pass
  devices = jax.devices()
  return {
      'platform': devices[0].platform,
      'device_kind': devices[0].device_kind,
      'num_devices': len(devices),
      'cpu': cpu,
      'cpu_count': os.cpu_count(),
      'python': platform.python_version(),
      'jax': jax.__version__,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'load_at_start': _load(),
  }


def main(argv: list[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark; returns (and optionally writes) the results."""
  args = parse_args(argv)
  if args.peer and not os.path.isfile(args.peer_script):
    raise SystemExit(
        f'--peer needs --peer-script: no file {args.peer_script!r}'
    )
  if args.reg_every > 1 and args.model != 'r3gan':
    raise SystemExit('--reg-every is for --model r3gan')
  if args.reg_every > 1 and args.compare_dtype:
    raise SystemExit('--compare-dtype times every-step programs only')
  base = load_config(args.config, args.override)
  result = {
      'command': ' '.join(
          [os.path.relpath(sys.argv[0])]
          + (sys.argv[1:] if argv is None else argv)
      ),
      'machine': machine_info(),
      'code_sha256': code_digest(),
  }
  if args.peak_tflops <= 0 and result['machine']['platform'] == 'cpu':
    args.peak_tflops = round(matmul_tflops(), 4)
    result['machine']['matmul_tflops_f32'] = args.peak_tflops
  result['peak_tflops'] = args.peak_tflops or None
  runs = [bench_batch(args, base, b) for b in args.batch]
  for run in runs:
    run['targets'] = check_targets(
        run, result['machine']['platform'], args.dtype
    )
    print(
        json.dumps({'batch': run['batch'], 'targets': run['targets']}),
        flush=True,
    )
  # The first batch size's numbers also sit at the top level, so that a
  # one-batch result reads {catgan_jax, peer, ratio, ...}.
  result.update({k: v for k, v in runs[0].items() if k != 'batch'})
  if len(runs) > 1:
    result['runs'] = runs
  result['machine']['load_at_end'] = _load()
  if result['machine']['platform'] == 'cpu':
    # The matmul rate again: how much the machine's state moved meanwhile.
    result['machine']['matmul_tflops_f32_at_end'] = round(matmul_tflops(), 4)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=1)
      f.write('\n')
  return result


if __name__ == '__main__':
  main()
