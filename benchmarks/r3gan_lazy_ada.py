"""The R3GAN step with lazy regularisation and with ADA's augment pipe.

    python benchmarks/r3gan_lazy_ada.py --width 8 --batch 32 --repeats 3 \\
        --out benchmarks/results/cpu_r3gan64_w8_lazy_ada.json

Times the jitted train-step programs of configs/r3gan64.py (64 px, widths
scaled by --width / 64) on random uint8 batches, alternating the programs
in each repeat so that a shared machine's load hits them alike:

  diffaugment_reg1: DiffAugment (colour, translation, cutout), R1 + R2 in
      every step (the recipe before ADA);
  ada_reg1: ADA's pipe (data.ada_pipe='r3gan'), R1 + R2 every step (the
      recipe as shipped);
  ada_reg{k}_plain / ada_reg{k}_reg: with loss.reg_every=k, the program of
      the k - 1 iterations without penalties and of the one with them.

A lazy step costs ((k - 1) plain + reg) / k on average. p is fixed at 0.3
(the ramp's end). Prints one JSON record (medians in seconds, the ratios,
the load averages before and after) and writes it to --out.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp

from catgan_jax import models  # pylint: disable=wrong-import-position
from catgan_jax import state as state_lib
from catgan_jax import step as step_lib
from configs import r3gan64


def _config(width: int, batch: int, augment: str, reg_every: int):
  config = r3gan64.get_config()
  config.data.source = 'synthetic'
  config.model.g_width = config.model.d_width = width
  config.batch_size = batch
  config.schedule.aug_p_ramp = False
  config.loss.reg_every = reg_every
  if augment == 'diffaugment':
    config.data.augment = 'diffaugment'
    config.data.diffaugment = 'color,translation,cutout'
    config.data.diffaugment_p = 0.3
  return config


def _program(config, phase):
  g, d = models.create_models(config)
  state = jax.jit(lambda: state_lib.create_state(config, g, d))()
  size = config.data.image_size
  batch = jax.random.randint(
      jax.random.PRNGKey(0),
      (step_lib.input_batch_size(config), size, size, 3),
      0,
      256,
  ).astype(jnp.uint8)
  fn = jax.jit(step_lib.make_train_step(config, g, d, phase))
  start = time.perf_counter()
  jax.block_until_ready(fn(state, batch))
  compile_s = time.perf_counter() - start
  return (lambda: jax.block_until_ready(fn(state, batch))), compile_s


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--width', type=int, default=8)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--reg_every', type=int, default=16)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  k = args.reg_every
  load_before = [round(x, 2) for x in os.getloadavg()]
  programs, compile_s = {}, {}
  for name, augment, reg, phase in (
      ('diffaugment_reg1', 'diffaugment', 1, (True, True, True)),
      ('ada_reg1', 'ada', 1, (True, True, True)),
      (f'ada_reg{k}_plain', 'ada', k, (True, True, False)),
      (f'ada_reg{k}_reg', 'ada', k, (True, True, True)),
  ):
    config = _config(args.width, args.batch, augment, reg)
    programs[name], compile_s[name] = _program(config, step_lib.Phase(*phase))
    print(name, 'compiled in', round(compile_s[name], 1), 's', flush=True)
  times = {name: [] for name in programs}
  for _ in range(args.repeats):
    for name, run in programs.items():
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
      print(name, round(times[name][-1], 2), flush=True)
  median = {name: statistics.median(t) for name, t in times.items()}
  lazy = ((k - 1) * median[f'ada_reg{k}_plain'] + median[f'ada_reg{k}_reg']) / k
  record = {
      'model': 'r3gan64',
      'width': args.width,
      'batch': args.batch,
      'reg_every': k,
      'repeats': args.repeats,
      'seconds': {n: [round(x, 3) for x in t] for n, t in times.items()},
      'median_s': {n: round(v, 3) for n, v in median.items()},
      'compile_s': {n: round(v, 1) for n, v in compile_s.items()},
      f'ada_reg{k}_mean_step_s': round(lazy, 3),
      f'speedup_reg{k}_over_reg1': round(median['ada_reg1'] / lazy, 3),
      'ada_over_diffaugment': round(
          median['ada_reg1'] / median['diffaugment_reg1'], 3
      ),
      'load_before': load_before,
      'load_after': [round(x, 2) for x in os.getloadavg()],
      'devices': str(jax.devices()),
  }
  print(json.dumps(record), flush=True)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(record, f, indent=1)


if __name__ == '__main__':
  main()
