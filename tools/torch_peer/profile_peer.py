"""Where the PyTorch DCGAN peer's iteration spends its time (torch.profiler).

    /tmp/torch/bin/python tools/torch_peer/profile_peer.py \\
        --peer-script /path/to/peer_torch_dcgan.py --batch 64 --iters 3 \\
        --out benchmarks/results/cpu_dcgan64_peer_profile.json

Imports the peer script's `generator` and `discriminator` and runs its
iteration exactly as it does (one D update on a real and a fake batch, one
G update, BCE with logits, Adam 2e-4 / beta1 0.5), under torch.profiler on
the CPU. Reported: self CPU time per aten operator per iteration, grouped
into the categories of `benchmarks/profile_step.py` (convolutions forward,
input gradient, weight gradient; batch norm; activations; Adam; layout;
other), and the wall time of the profiled iterations.
"""

import argparse
import importlib.util
import json
import os
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile


def load_peer(path):
  spec = importlib.util.spec_from_file_location('peer', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def category(name: str) -> str:
  n = name.lower()
  if 'convolution_backward' in n:
    return 'conv:backward (input + weight grad)'
  if 'conv' in n or 'mkldnn_convolution' in n or 'slow_conv' in n:
    return 'conv:fwd'
  if 'addmm' in n or n.startswith('aten::mm') or 'matmul' in n:
    return 'dense'
  if 'batch_norm' in n:
    return 'batchnorm'
  if any(k in n for k in ('relu', 'leaky', 'tanh', 'threshold')):
    return 'activation'
  if any(
      k in n for k in ('adam', '_foreach', 'lerp', 'addcdiv', 'addcmul', 'sqrt')
  ):
    return 'adam'
  if any(
      k in n
      for k in (
          'copy_',
          'contiguous',
          'clone',
          'transpose',
          'permute',
          'view',
          'as_strided',
          'empty',
          'zero',
          'fill_',
      )
  ):
    return 'layout/alloc'
  if any(k in n for k in ('binary_cross', 'sigmoid', 'log', 'mean', 'sum')):
    return 'loss'
  return 'other'


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--peer-script', required=True)
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--iters', type=int, default=3)
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--threads', type=int, default=0)
  p.add_argument('--out', default='')
  a = p.parse_args()
  if a.threads:
    torch.set_num_threads(a.threads)
  peer = load_peer(a.peer_script)
  torch.manual_seed(0)
  g, d = peer.generator(), peer.discriminator()
  opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = nn.BCEWithLogitsLoss()
  real = torch.rand(a.batch, 3, 64, 64) * 2 - 1
  ones, zeros = torch.ones(a.batch, 1), torch.zeros(a.batch, 1)

  def step():
    z = torch.randn(a.batch, 100, 1, 1)
    fake = g(z)
    opt_d.zero_grad(set_to_none=True)
    loss_d = bce(d(real), ones) + bce(d(fake.detach()), zeros)
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    loss_g = bce(d(fake), ones)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()

  load_start = [round(x, 2) for x in os.getloadavg()]
  for _ in range(a.warmup):
    step()
  t0 = time.perf_counter()
  for _ in range(a.iters):
    step()
  plain_s = (time.perf_counter() - t0) / a.iters
  with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    t0 = time.perf_counter()
    for _ in range(a.iters):
      step()
    wall = (time.perf_counter() - t0) / a.iters
  ops = []
  cats = {}
  for evt in prof.key_averages(group_by_input_shape=True):
    ms = evt.self_cpu_time_total / 1000 / a.iters
    if ms < 0.05:
      continue
    cat = category(evt.key)
    cats[cat] = cats.get(cat, 0.0) + ms
    ops.append(
        {
            'op': evt.key,
            'shapes': str(evt.input_shapes)[:160],
            'category': cat,
            'calls_per_iter': evt.count / a.iters,
            'self_ms_per_iter': round(ms, 2),
        }
    )
  ops.sort(key=lambda o: -o['self_ms_per_iter'])
  total = sum(cats.values())
  result = {
      'command': 'tools/torch_peer/profile_peer.py --batch %d --iters %d'
      % (a.batch, a.iters),
      'torch': torch.__version__,
      'threads': torch.get_num_threads(),
      'batch': a.batch,
      'load_start': load_start,
      's_per_iter_unprofiled': round(plain_s, 4),
      's_per_iter_profiled': round(wall, 4),
      'self_ms_per_iter': round(total, 1),
      'categories_ms': {
          k: round(v, 1) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])
      },
      'top_ops': ops[:30],
      'load_end': [round(x, 2) for x in os.getloadavg()],
  }
  print(
      json.dumps({k: v for k, v in result.items() if k != 'top_ops'}, indent=1)
  )
  for o in ops[:30]:
    print(o['self_ms_per_iter'], o['op'], o['shapes'][:100])
  if a.out:
    with open(a.out, 'w') as f:
      json.dump(result, f, indent=1)
      f.write('\n')


if __name__ == '__main__':
  main()
