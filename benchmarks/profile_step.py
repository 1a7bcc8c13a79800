"""Where the time of one compiled DCGAN-64 train step goes, op by op.

    .venv/bin/python benchmarks/profile_step.py --batch 64 --steps 3 \\
        --out benchmarks/results/cpu_dcgan64_profile.json

Builds the benchmark's step (`step_throughput.StepBench`: the trainer's own
jitted, donated program with the PyTorch recipe's optimiser), runs it under
`jax.profiler.trace`, and reads the per-thunk events XLA:CPU records (one
per fusion, convolution, custom call or copy of the compiled program) from
the Perfetto trace. Each thunk is matched with its instruction in the
compiled HLO, whose metadata names the JAX operation and the Flax module
path it came from, and is put into one category:

  * ``conv_launch``: a convolution thunk. XLA:CPU runs convolutions
    asynchronously on its thread pool, so their events time the launch
    only; `benchmarks/profile_layers.py` times each convolution on its own.
    The wall time of the step less the other thunks' times is what the
    convolutions (and waits for them) take;
  * ``batchnorm`` (statistics and normalisation, forward and backward),
    ``activation``, ``adam`` (the optimiser update), ``layout`` (copies,
    transposes, pads, concatenations and slices XLA runs on their own),
    ``loss`` and ``other``.

An element-wise thunk competes with a convolution that runs beside it on
the same thread pool, so under load its time includes waits; the shares
are of the summed thunk time.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time
from typing import Any

import jax

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from benchmarks import step_throughput as bench_lib  # pylint: disable=g-import-not-at-top

# An HLO instruction: "%name = <shape> opcode(operands), attrs".
_INSTR = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = (\S+(?: \S+)*?) ([\w\-]+)\(')
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument(
      '--config', default=os.path.join(_REPO, 'configs', 'dcgan64.py')
  )
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--steps', type=int, default=3, help='profiled steps')
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--out', default='', help='write the summary JSON here')
  p.add_argument('--top', type=int, default=25, help='thunks listed by time')
  p.add_argument('--hlo-out', default='', help='write the compiled HLO here')
  return p.parse_args(argv)


def hlo_instructions(hlo_text: str) -> dict[str, dict[str, Any]]:
  """Instruction name -> {opcode, shape, op_name, line} of every computation.

  A fusion's own line gives its opcode 'fusion'; the instructions inside
  its computation are indexed too, under the fused computation's name, so
  a fusion's category can be read from what it computes.
  """
  instrs, computation = {}, ''
  for line in hlo_text.splitlines():
    if line and not line.startswith(' ') and '{' in line:
      computation = line.split()[0].lstrip('%')
      if computation == 'ENTRY':
        computation = line.split()[1].lstrip('%')
      continue
    m = _INSTR.match(line)
    if not m:
      continue
    name, shape, opcode = m.groups()
    op = _OP_NAME.search(line)
    instrs[name] = {
        'opcode': opcode,
        'shape': shape,
        'op_name': op.group(1) if op else '',
        'computation': computation,
        'line': line.strip(),
    }
  return instrs


def _fused_body(instrs, name: str) -> list[dict[str, Any]]:
  line = instrs[name]['line']
  m = re.search(r'calls=%?([\w.\-]+)', line)
  if not m:
    return []
  return [i for i in instrs.values() if i['computation'] == m.group(1)]


def _module(op_name: str) -> str:
  """'Generator/ConvTranspose2x_1' style module path of a JAX op name."""
  parts = [p for p in op_name.split('/') if p]
  keep = []
  for p in parts:
    inner = re.sub(r'^(\w+\()+', '', p).rstrip(')')
    if inner[:1].isupper() and inner not in ('Tuple',):
      keep.append(inner)
  return '/'.join(keep)


def categorize(instrs, name: str) -> str:
  """The category of the thunk that runs instruction `name`."""
  info = instrs.get(name)
  if info is None:
    return 'other:' + name
  body = (
      _fused_body(instrs, name) if info['opcode'] == 'fusion' else [info]
  ) or [info]
  convs = [i for i in body if i['opcode'] == 'convolution']
  op_names = ' '.join(i['op_name'] for i in body) or info['op_name']
  if convs:
    # The thunk's time is its launch only: XLA:CPU runs the convolution
    # asynchronously on its thread pool (see profile_layers.py).
    return f'conv_launch:{_module(convs[0]["op_name"]) or "?"}'
  opcodes = {i['opcode'] for i in body}
  if 'adam' in op_names.lower() or 'scale_by_adam' in op_names:
    return 'adam'
  if re.search(r'BatchNorm|batch_norm|_compute_stats|_normalize', op_names):
    return 'batchnorm'
  if re.search(r'relu|leaky|tanh|select_n|max\b', op_names) and not (
      opcodes & {'dot'}
  ):
    return 'activation'
  if opcodes & {'dot'}:
    return 'dense'
  if opcodes <= {
      'copy',
      'transpose',
      'pad',
      'concatenate',
      'slice',
      'bitcast',
      'reshape',
      'parameter',
      'broadcast',
      'dynamic-slice',
      'dynamic-update-slice',
      'reverse',
      'constant',
  }:
    return 'layout'
  if re.search(r'loss|log_sigmoid|softplus|sigmoid|logistic', op_names):
    return 'loss'
  return 'other'


def moves_data(instrs, name: str) -> bool:
  """Whether a non-convolution thunk transposes or concatenates its data."""
  info = instrs[name]
  body = _fused_body(instrs, name) if info['opcode'] == 'fusion' else [info]
  opcodes = {i['opcode'] for i in body or [info]}
  return 'convolution' not in opcodes and bool(
      opcodes & {'transpose', 'concatenate'}
  )


def profile(bench, steps: int, trace_dir: str) -> dict[str, list[float]]:
  """Thunk name -> durations (us) over `steps` steps of `bench`."""
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    bench.run(steps)
  paths = glob.glob(
      os.path.join(trace_dir, '**', '*.trace.json.gz'), recursive=True
  )
  with gzip.open(paths[0]) as f:
    trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  durations = collections.defaultdict(list)
  for e in events:
    if e.get('ph') != 'X' or 'dur' not in e:
      continue
    name = e['name']
    if name.startswith(('end: ', '$')) or '::' in name or ' ' in name:
      continue
    durations[name].append(float(e['dur']))
  return durations


def summarize(instrs, durations, steps: int, wall_s: float, top: int):
  """The per-category and per-thunk tables of one profile."""
  per_cat = collections.defaultdict(lambda: {'ms': 0.0, 'n': 0})
  per_thunk = []
  moving_ms = 0.0
  for name, ds in durations.items():
    if name not in instrs:
      continue
    cat = categorize(instrs, name)
    ms = sum(ds) / 1000 / steps
    c = per_cat[cat]
    c['ms'] += ms
    c['n'] += 1
    if moves_data(instrs, name):
      moving_ms += ms
    per_thunk.append(
        {
            'thunk': name,
            'category': cat,
            'ms': round(ms, 2),
            'op_name': instrs[name]['op_name'][-160:],
        }
    )
  total = sum(c['ms'] for c in per_cat.values())
  cats = {
      k: {
          'ms': round(v['ms'], 1),
          'share': round(v['ms'] / total, 4),
          'thunks': v['n'],
      }
      for k, v in sorted(per_cat.items(), key=lambda kv: -kv[1]['ms'])
  }
  groups = collections.defaultdict(float)
  for k, v in per_cat.items():
    groups[k.split(':')[0]] += v['ms']
  non_conv = sum(v for k, v in groups.items() if k != 'conv_launch')
  per_thunk.sort(key=lambda t: -t['ms'])
  return {
      'wall_ms_per_step': round(wall_s * 1000 / steps, 1),
      'thunk_ms_per_step': round(total, 1),
      'groups_ms': {k: round(v, 1) for k, v in groups.items()},
      'non_conv_thunk_ms_per_step': round(non_conv, 1),
      # Of those, the thunks that transpose or concatenate (layout work,
      # often fused with a BatchNorm or an activation).
      'transposing_thunk_ms_per_step': round(moving_ms, 1),
      # What is left of the wall time for the convolutions to run in.
      'wall_less_non_conv_ms': round(wall_s * 1000 / steps - non_conv, 1),
      'categories': cats,
      'top_thunks': per_thunk[:top],
  }


def main(argv=None) -> dict[str, Any]:
  args = parse_args(argv)
  config = bench_lib.peer_matched_config(
      bench_lib.load_config(args.config), args.batch, 'float32'
  )
  load_start = bench_lib._load()  # pylint: disable=protected-access
  bench = bench_lib.StepBench(config)
  bench.run(args.warmup)
  compiled = bench.step.program((True, True))
  hlo_text = compiled.as_text()
  if args.hlo_out:
    with open(args.hlo_out, 'w') as f:
      f.write(hlo_text)
  instrs = hlo_instructions(hlo_text)
  t0 = time.perf_counter()
  bench.run(args.steps)
  wall_s = time.perf_counter() - t0
  with tempfile.TemporaryDirectory() as trace_dir:
    durations = profile(bench, args.steps, trace_dir)
  result = {
      'command': ' '.join(
          ['benchmarks/profile_step.py']
          + (sys.argv[1:] if argv is None else argv)
      ),
      'machine': bench_lib.machine_info(),
      'code_sha256': bench_lib.code_digest(),
      'batch': args.batch,
      'load_start': load_start,
      'flops_per_step': bench.flops_per_step,
      **summarize(instrs, durations, args.steps, wall_s, args.top),
      'load_end': bench_lib._load(),  # pylint: disable=protected-access
  }
  print(
      json.dumps(
          {k: v for k, v in result.items() if k != 'top_thunks'}, indent=1
      )
  )
  for t in result['top_thunks']:
    print(t['ms'], t['category'], t['thunk'])
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=1)
      f.write('\n')
  return result


if __name__ == '__main__':
  main()
