"""Does catgan_jax's train step compute what the PyTorch reference step does?

    .venv/bin/python tools/torch_peer/peer_equivalence.py --peer /tmp/torch/bin/python \\
        --loss nsgan --loss lsgan --steps 5 \\
        --out tools/torch_peer/results/peer_equivalence.json

For each `--loss`: builds catgan_jax's DCGAN-64 with the peer's optimiser
(Adam 2e-4, beta1 0.5 for both networks, as `step_throughput.py` does), runs
`--steps` iterations of the trainer's own compiled step on real faces
(`--data-dir`; random pixels when it is absent), and replays the same
iterations with the PyTorch peer's networks (`peer_replay.py` under `--peer`,
the loss written out in torch) from the same initial weights (converted to
torch's layouts), with the same latents (`step.latents` of each iteration's
key) and the same real batches, once in float32 and once in float64.

The float64 replay is the reference. For each float32 run (catgan_jax and
PyTorch) it reports the largest relative error of the D and G losses over
the steps, and for every weight the relative error of its change over the
run, ||(w - w0) - (w_ref - w0)|| / ||w_ref - w0|| (G's BatchNorm running
statistics included). Float32 GAN steps amplify rounding: in PyTorch alone,
G's gradient agrees with float64 to 2e-6 before D's first update and to 2e-3
after it, and Adam's first, nearly sign-like steps turn that into 4-12%
differences in the weight changes (batch 16, one iteration). So the criterion
is relative: a loss passes when catgan_jax's worst error is at most
`--factor` times PyTorch float32's, and its first D loss (one forward pass
of the initial weights, nothing amplified yet) is within 1e-4.

Not compared, by design: D's BatchNorm running statistics (the peer also
updates them in its G update's forward pass; D always normalises by batch
statistics, so they never enter a step). Torch's running variance is the
unbiased one (n / (n - 1) of catgan_jax's: 1.001 at G's first layer at
batch 64), which shows as a 1e-4 error there.

Prints one JSON object, writes it to `--out`, and exits 1 when a loss fails.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import jax
import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from benchmarks import step_throughput as bench  # pylint: disable=g-import-not-at-top
from catgan_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from catgan_jax import parallel  # pylint: disable=g-import-not-at-top
from catgan_jax import step as step_lib  # pylint: disable=g-import-not-at-top
from catgan_jax import train  # pylint: disable=g-import-not-at-top
from catgan_jax.data import preprocess  # pylint: disable=g-import-not-at-top
from catgan_jax.data import sources  # pylint: disable=g-import-not-at-top
from catgan_jax.models import torch_layout  # pylint: disable=g-import-not-at-top

cli.configure()

_BN_FIELDS = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
              'running_mean': ('batch_stats', 'mean'),
              'running_var': ('batch_stats', 'var')}
_LOSSES = ('nsgan', 'lsgan', 'hinge', 'rasgan', 'ralsgan')
# float32 against float64 on one forward pass of DCGAN-64 (measured: 4e-8 to
# 1.3e-7 at batch 64).
FIRST_D_LOSS_RTOL = 1e-4
_LOG_KEYS = ('d_loss', 'g_loss', 'd_real_logit', 'd_fake_logit')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--peer', required=True,
                 help='a Python with torch, numpy and pillow')
  p.add_argument('--loss', choices=_LOSSES, action='append',
                 help='repeat for several losses (default: nsgan)')
  p.add_argument('--steps', type=int, default=5)
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--data-dir', default=os.path.join(
      _REPO, '..', 'shared', 'data', 'cat_faces_64'))
  p.add_argument('--factor', type=float, default=2.0,
                 help='pass when catgan_jax\'s worst relative error against '
                 'the float64 replay is at most this times PyTorch float32\'s')
  p.add_argument('--out', default=None)
  return p.parse_args(argv)


def _modules(tree: dict[str, Any], prefix: str) -> list[str]:
  """Names of the modules `prefix`_0, _1, ... of a variables tree, in order."""
  names = [n for n in tree if n.startswith(prefix + '_')]
  return sorted(names, key=lambda n: int(n.rsplit('_', 1)[1]))


def to_torch_layout(variables: dict[str, Any], net: str) -> dict[str, Any]:
  """A DCGAN-64 network's variables as `peer_replay.py`'s named arrays.

  Args:
    variables: {'params': ..., 'batch_stats': ...} of one network.
    net: 'g' or 'd'.

  Returns:
    {'<net>_conv_<i>': weight, '<net>_bn_<i>_<field>': vector}, float32, in
    torch's layouts (`models/torch_layout.py`) and the peer's module order.
  """
  params = variables['params']
  if net == 'g':
    kernels = [torch_layout.dense_to_torch(params['Dense_0']['kernel'])]
    kernels += [torch_layout.conv_transpose_to_torch(params[n]['kernel'])
                for n in _modules(params, 'ConvTranspose2x')]
  else:
    kernels = [torch_layout.conv_to_torch(params[n]['kernel'])
               for n in _modules(params, 'Conv')]
  out = {f'{net}_conv_{i}': np.ascontiguousarray(k, np.float32)
         for i, k in enumerate(kernels)}
  for i, name in enumerate(_modules(params, 'BatchNorm')):
    for field, (collection, key) in _BN_FIELDS.items():
      out[f'{net}_bn_{i}_{field}'] = np.asarray(
          variables[collection][name][key], np.float32)
  return out


def _state_in_torch_layout(state) -> dict[str, np.ndarray]:
  state = jax.device_get(state)
  return {**to_torch_layout({'params': state.g.params,
                             'batch_stats': state.g.batch_stats}, 'g'),
          **to_torch_layout({'params': state.d.params,
                             'batch_stats': state.d.batch_stats}, 'd')}


def real_batches(data_dir: str, steps: int, batch: int,
                 seed: int) -> tuple[list[np.ndarray], str]:
  """`steps` uint8 batches [batch, 64, 64, 3] of faces from `data_dir` (or of
  uniform random pixels when it does not exist), and where they came from.

  The images are listed and decoded as the trainer's folder source does;
  unusable files are skipped, and others drawn in their place.
  """
  rng = np.random.default_rng(seed)
  if not os.path.isdir(data_dir):
    return ([rng.integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8)
             for _ in range(steps)], 'uniform random pixels')
  paths = sources.list_image_files(data_dir)
  picked = rng.choice(len(paths), size=min(len(paths), steps * batch * 2),
                      replace=False)
  images = []
  for i in picked:
    try:
      image = preprocess.load_rgb(paths[i])
    except preprocess.UnusableImageError:
      continue
    images.append(preprocess.crop_and_resize(image, 64, 'center'))
    if len(images) == steps * batch:
      break
  if len(images) < steps * batch:
    raise SystemExit(f'--data-dir: {data_dir!r} has {len(images)} usable '
                     f'images, {steps * batch} needed.')
  stacked = np.stack(images)
  return [stacked[t * batch:(t + 1) * batch] for t in range(steps)], data_dir


def replay(peer: str, loss: str, dtype: str, inputs: str,
           outputs: str) -> tuple[dict, dict]:
  """Runs `peer_replay.py`; returns its (final weights, per-step logs)."""
  proc = subprocess.run(
      [peer, os.path.join(_REPO, 'tools', 'torch_peer', 'peer_replay.py'), inputs,
       outputs, '--loss', loss, '--dtype', dtype, '--g-lr',
       str(bench.PEER_LR), '--d-lr', str(bench.PEER_LR)],
      capture_output=True, text=True, check=False)
  if proc.returncode:
    raise SystemExit(f'peer_replay.py --dtype {dtype} failed: '
                     f'{proc.stderr[-2000:]}')
  arrays = dict(np.load(outputs))
  logs = {k: arrays.pop(k) for k in _LOG_KEYS}
  return arrays, logs


def run_catgan_jax(config, batches: list[np.ndarray]):
  """Runs the trainer's compiled step over `batches`.

  Returns:
    (initial state in torch layout, final state in torch layout, metrics per
    step as lists, the latents of every step).
  """
  mesh = parallel.create_mesh()
  run = train.build(config, mesh)
  state, step_fn = run.state, run.train_step
  initial = _state_in_torch_layout(state)
  z_dim = config.model.z_dim
  rng = jax.device_get(state.rng)
  latents = [np.asarray(step_lib.latents(
      step_lib.iteration_keys(rng, t)['z'], config.batch_size, z_dim))
             for t in range(len(batches))]
  logs = {k: [] for k in _LOG_KEYS}
  for t, images in enumerate(batches):
    state, metrics = step_fn(
        state, jax.device_put(images, parallel.batch_sharded(mesh)), t)
    metrics = jax.device_get(metrics)
    for k in logs:
      logs[k].append(float(metrics[k]))
  return initial, _state_in_torch_layout(state), logs, latents


def _rel(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _errors(initial, final, logs, ref_final, ref_logs) -> dict[str, Any]:
  """One float32 run's errors against the float64 reference run."""
  losses = {k: max(abs(a - b) / max(abs(b), 1e-6)
                   for a, b in zip(logs[k], ref_logs[k]))
            for k in ('d_loss', 'g_loss')}
  weights = {}
  for name, w0 in initial.items():
    if name.startswith('d_bn') and 'running' in name:
      continue  # Not used by any step (see the module docstring).
    w0 = w0.astype(np.float64)
    weights[name] = _rel(final[name] - w0, ref_final[name] - w0)
  return {'loss_rel_err': losses, 'weight_change_rel_err': weights,
          'max_loss_rel_err': max(losses.values()),
          'median_weight_change_rel_err': float(np.median(
              list(weights.values()))),
          'max_weight_change_rel_err': max(weights.values())}


def compare(initial, runs: dict[str, tuple[dict, dict]]) -> dict[str, Any]:
  """Errors of the float32 runs against the float64 reference.

  Args:
    initial: the initial weights, torch layout.
    runs: name -> (final weights, per-step logs), with 'pytorch_float64'
      the reference.

  Returns:
    {'per_step': every run's logs, '<run>': its errors} for each float32 run.
  """
  ref_final, ref_logs = runs['pytorch_float64']
  out = {'per_step': {k: {name: [float(x) for x in logs[k]]
                          for name, (_, logs) in runs.items()}
                      for k in ref_logs}}
  for name, (final, logs) in runs.items():
    if name != 'pytorch_float64':
      out[name] = _errors(initial, final, logs, ref_final, ref_logs)
  return out


def check_loss(args: argparse.Namespace, loss: str) -> dict[str, Any]:
  """The comparison of one loss (see the module docstring)."""
  config = bench.peer_matched_config(
      bench.load_config(os.path.join(_REPO, 'configs', 'dcgan64.py')),
      args.batch, 'float32', loss)
  config.seed = args.seed
  config.train.ema_decay = 0.0
  batches, source = real_batches(args.data_dir, args.steps, args.batch,
                                 args.seed)
  t0 = time.perf_counter()
  initial, jax_final, jax_logs, latents = run_catgan_jax(config, batches)
  runs = {'catgan_jax': (jax_final, jax_logs)}
  seconds = {'catgan_jax': round(time.perf_counter() - t0, 1)}
  with tempfile.TemporaryDirectory() as tmp:
    inputs = os.path.join(tmp, 'in.npz')
    np.savez(inputs, **initial,
             **{f'z_{t}': z for t, z in enumerate(latents)},
             **{f'real_{t}': b for t, b in enumerate(batches)})
    for dtype in ('float32', 'float64'):
      name, t0 = f'pytorch_{dtype}', time.perf_counter()
      runs[name] = replay(args.peer, loss, dtype, inputs,
                          os.path.join(tmp, f'{dtype}.npz'))
      seconds[name] = round(time.perf_counter() - t0, 1)
  result = compare(initial, runs)
  worst = {name: max(result[name]['max_loss_rel_err'],
                     result[name]['max_weight_change_rel_err'])
           for name in ('catgan_jax', 'pytorch_float32')}
  # The first D loss is one forward pass of the initial weights, before any
  # update can amplify rounding (the first G loss already sees the updated
  # D): it must agree to float32 precision.
  first_d = [result['per_step']['d_loss'][name][0]
             for name in ('catgan_jax', 'pytorch_float64')]
  first = abs(first_d[0] - first_d[1]) / max(abs(first_d[1]), 1e-6)
  result.update({
      'data': source, 'worst_rel_err': worst, 'seconds': seconds,
      'first_d_loss_rel_err': first,
      'passed': bool(first <= FIRST_D_LOSS_RTOL and worst['catgan_jax']
                     <= args.factor * max(worst['pytorch_float32'], 1e-6))})
  return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  losses = args.loss or ['nsgan']
  results = {loss: check_loss(args, loss) for loss in losses}
  for loss, r in results.items():
    print(f'{loss}: worst relative error against float64: catgan_jax '
          f'{r["worst_rel_err"]["catgan_jax"]:.3g}, PyTorch float32 '
          f'{r["worst_rel_err"]["pytorch_float32"]:.3g}; first D loss '
          f'{r["first_d_loss_rel_err"]:.2g} -> '
          f'{"pass" if r["passed"] else "FAIL"}')
  out = {'losses': results, 'steps': args.steps, 'batch': args.batch,
         'seed': args.seed, 'factor': args.factor,
         'passed': all(r['passed'] for r in results.values()),
         'machine': bench.machine_info(), 'code_digest': bench.code_digest(),
         'command': ' '.join(sys.argv)}
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
      json.dump(out, f, indent=1)
  if not out['passed']:
    sys.exit(1)
  return out


if __name__ == '__main__':
  main()
