"""Alternating A/B timing of the DCGAN-64 train step under several variants.

    .venv/bin/python benchmarks/ab_step.py --rounds 4 --iters 3 \\
        --variant base= \\
        --variant noreduce=XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-reduce \\
        --variant head=@/tmp/head_tree \\
        --out benchmarks/results/ab.json

On shared cores the machine's speed drifts by 10-30% within minutes, so two
variants measured one after the other are not comparable. Each variant
here is one long-lived worker process (its own environment, optionally its
own source tree: ``@DIR`` runs the benchmark from a copy of the repository
at DIR, e.g. ``git archive HEAD | tar -x -C DIR``); the driver builds and
compiles them all first, then asks them in turn, round after round, to time
`--iters` steps, so that every variant sees the same drift. Reported per
variant: the median and the best s/step, and each variant's time relative
to the first one's, paired by round; the same for the process's CPU time
(user + system over all its threads) a step, the work done, which the
load moves less than the wall time.

A variant is ``NAME=SPEC`` where SPEC is a comma-free list of
``KEY=VALUE`` environment settings joined by ``;`` and/or ``@DIR``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The worker: builds the benchmark step, then times `iters` steps per line.
_WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from benchmarks import step_throughput as b
config = b.peer_matched_config(b.load_config(sys.argv[2]), int(sys.argv[3]), 'float32')
bench = b.StepBench(config)
bench.run(int(sys.argv[4]))
print(json.dumps({'ready': True, 'compile_s': bench.compile_s,
                  'flops': bench.flops_per_step}), flush=True)
for line in sys.stdin:
  n = int(line)
  if n <= 0:
    break
  import os
  c0 = os.times()
  t = bench.run(n)
  c1 = os.times()
  cpu = (c1.user - c0.user) + (c1.system - c0.system)
  import numpy as np, jax
  print(json.dumps({'s': t / n, 'cpu_s': cpu / n, 'finite': bool(np.asarray(jax.device_get(bench.metrics['finite'])))}), flush=True)
"""


def parse_variant(text: str) -> tuple[str, dict[str, str], str]:
  name, _, spec = text.partition('=')
  env, tree = {}, _REPO
  for part in filter(None, spec.split(';')):
    if part.startswith('@'):
      tree = part[1:]
    else:
      key, _, value = part.partition('=')
      env[key] = value
  return name, env, tree


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--variant', action='append', required=True)
  p.add_argument(
      '--config', default=os.path.join(_REPO, 'configs', 'dcgan64.py')
  )
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--iters', type=int, default=3)
  p.add_argument('--warmup', type=int, default=1)
  p.add_argument('--rounds', type=int, default=4)
  p.add_argument('--out', default='')
  args = p.parse_args(argv)
  variants = [parse_variant(v) for v in args.variant]
  load_start = [round(x, 2) for x in os.getloadavg()]
  workers = {}
  for name, env, tree in variants:
    # Built one at a time, so that compiles do not overlap the others.
    proc = subprocess.Popen(
        [
            sys.executable,
            '-c',
            _WORKER,
            tree,
            args.config,
            str(args.batch),
            str(args.warmup),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        cwd=tree,
    )
    ready = json.loads(proc.stdout.readline())
    workers[name] = (proc, ready)
    print(name, ready, flush=True)
  times = {name: [] for name, _, _ in variants}
  cpu_times = {name: [] for name, _, _ in variants}
  finite = {}
  for r in range(args.rounds):
    order = list(times) if r % 2 == 0 else list(times)[::-1]
    for name in order:
      proc = workers[name][0]
      proc.stdin.write(f'{args.iters}\n')
      proc.stdin.flush()
      out = json.loads(proc.stdout.readline())
      times[name].append(out['s'])
      cpu_times[name].append(out['cpu_s'])
      finite[name] = out['finite']
      print(r, name, round(out['s'], 4), round(out['cpu_s'], 4), flush=True)
  for proc, _ in workers.values():
    proc.stdin.write('0\n')
    proc.stdin.close()
    proc.wait()
  first = variants[0][0]
  result = {
      'command': ' '.join(
          ['benchmarks/ab_step.py'] + (sys.argv[1:] if argv is None else argv)
      ),
      'batch': args.batch,
      'iters_per_round': args.iters,
      'load_start': load_start,
      'load_end': [round(x, 2) for x in os.getloadavg()],
      'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
      'variants': {},
  }
  for name, env, tree in variants:
    ts = times[name]
    rel = [t / f for t, f in zip(ts, times[first])]
    result['variants'][name] = {
        'env': env,
        'tree': os.path.relpath(tree, _REPO) if tree != _REPO else '.',
        'compile_s': round(workers[name][1]['compile_s'], 2),
        's_per_step_all': [round(t, 4) for t in ts],
        's_per_step_median': round(statistics.median(ts), 4),
        's_per_step_best': round(min(ts), 4),
        f'time_vs_{first}_median': round(statistics.median(rel), 4),
        f'time_vs_{first}_all': [round(x, 4) for x in rel],
        # CPU seconds (user + system, all threads) a step: the work,
        # which the load on shared cores changes less than the wall time.
        'cpu_s_per_step_all': [round(t, 4) for t in cpu_times[name]],
        'cpu_s_per_step_median': round(statistics.median(cpu_times[name]), 4),
        f'cpu_vs_{first}_median': round(
            statistics.median(
                [t / f for t, f in zip(cpu_times[name], cpu_times[first])]
            ),
            4,
        ),
        'finite': finite[name],
    }
  print(json.dumps(result['variants'], indent=1))
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=1)
      f.write('\n')


if __name__ == '__main__':
  main()
