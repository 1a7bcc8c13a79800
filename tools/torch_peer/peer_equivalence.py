"""Does catgan_jax's train step compute what the PyTorch reference step does?

    .venv/bin/python tools/torch_peer/peer_equivalence.py --peer /tmp/torch/bin/python \\
        --peer-script /path/to/peer_torch_dcgan.py --data-dir /path/to/cat_faces_64 \\
        --loss nsgan --loss lsgan --recipe wgan --recipe hinge_sn --steps 5 \\
        --out tools/torch_peer/results/peer_equivalence.json

Each `--loss` builds catgan_jax's DCGAN-64 with the peer's optimiser (Adam
2e-4, beta1 0.5 for both networks, as `step_throughput.py` does) and replays
it with the peer's DCGAN loop (`peer_replay.py --recipe dcgan`). Each
`--recipe` (see `RECIPES`) is an experiment config, at `--width` and
`--batch` when given, replayed with the training loop of its reference code
(`peer_reference_loops.py`): WGAN's RMSprop, clamping and critic schedule,
WGAN-GP's penalty, spectral normalisation, and the generator step's fresh
latents and real batch. Either way the tool runs `--steps` iterations of the
trainer's own compiled step on real faces (`--data-dir`; random pixels when
it is absent) and replays the same iterations with the PyTorch peer's
networks (`peer_replay.py` under `--peer`) from the same initial weights
(converted to torch's layouts; spectral norm's `u` included), with the same
random draws (`step.iteration_keys` of each iteration: the latents of the D
and the G step, WGAN-GP's interpolation weights as `losses.gradient_penalty`
draws them) and the same real batches, once in float32 and once in float64.

The float64 replay is the reference. For each float32 run (catgan_jax and
PyTorch) it reports the largest relative error of the D and G losses over
the steps (G's only at the iterations that update G), and for every weight
the relative error of its change over the run,
||(w - w0) - (w_ref - w0)|| / ||w_ref - w0|| (G's BatchNorm running
statistics and spectral norm's `u` included). Float32 GAN steps amplify
rounding: in PyTorch alone, G's gradient agrees with float64 to 2e-6 before
D's first update and to 2e-3 after it, and Adam's first, nearly sign-like
steps turn that into 4-12% differences in the weight changes (batch 16, one
iteration). So the criterion is relative: a run passes when catgan_jax's
worst error is at most `--factor` times PyTorch float32's, its first D loss
(one forward pass of the initial weights, nothing amplified yet) is within
1e-4, and both update G at the same iterations.

Not compared, by design: D's BatchNorm running statistics (the peer also
updates them in its G update's forward pass; D always normalises by batch
statistics, so they never enter a step). Torch's running variance is the
unbiased one (n / (n - 1) of catgan_jax's: 1.001 at G's first layer at
batch 64), which shows as a 1e-4 error there.

Prints one JSON object, writes it to `--out`, and exits 1 when a run fails.
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

_REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

from benchmarks import step_throughput as bench  # pylint: disable=g-import-not-at-top
from configs import default as default_config  # pylint: disable=g-import-not-at-top
from catgan_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from catgan_jax import parallel  # pylint: disable=g-import-not-at-top
from catgan_jax import step as step_lib  # pylint: disable=g-import-not-at-top
from catgan_jax import train  # pylint: disable=g-import-not-at-top
from catgan_jax.data import preprocess  # pylint: disable=g-import-not-at-top
from catgan_jax.data import sources  # pylint: disable=g-import-not-at-top
from catgan_jax.models import torch_layout  # pylint: disable=g-import-not-at-top

cli.configure()

_BN_FIELDS = {
    'weight': ('params', 'scale'),
    'bias': ('params', 'bias'),
    'running_mean': ('batch_stats', 'mean'),
    'running_var': ('batch_stats', 'var'),
}
_LOSSES = ('nsgan', 'lsgan', 'hinge', 'rasgan', 'ralsgan')
# float32 against float64 on one forward pass of DCGAN-64 (measured: 4e-8 to
# 1.3e-7 at batch 64).
FIRST_D_LOSS_RTOL = 1e-4
_LOG_KEYS = (
    'd_loss',
    'g_loss',
    'd_real_logit',
    'd_fake_logit',
    'd_grad_norm',
    'g_grad_norm',
    'gp',
)

# The recipes replayed with their reference's own training loop: (config,
# overrides, what it checks). 'default.py' is configs/default.py with the
# overrides.
RECIPES = {
    'wgan': (
        'wgan64.py',
        {
            # WGAN.py's critic schedule (N_critic 100 before each of the first 25
            # and every 500th G update, else 5) at a scale that a 10-iteration
            # run holds both kinds of group: 3 before G updates 0 and 2, 4, ...,
            # else 2 (G at iterations 2, 4, 7, 9).
            'train.d_steps_per_g_step': 2,
            'train.warmup_d_steps_per_g_step': 3,
            'train.warmup_g_steps': 1,
            'train.warmup_every_g_steps': 2,
        },
        'RMSprop, the clamp at the start of each critic iteration, the '
        'critic warm-up and n_critic schedule, fresh z for G',
    ),
    'wgan_gp': (
        'wgan_gp64.py',
        {},
        'the gradient penalty, a critic without normalisation, '
        'n_critic 5, Adam (0, 0.9), fresh z for G',
    ),
    # hinge64 as GAN_losses_iter.py --loss_D 4 --spectral True runs it: its
    # G step draws a fresh z (hinge64 ships g_samples='reuse').
    'hinge_sn': (
        'hinge64.py',
        {'train.g_samples': 'fresh_z'},
        'spectral norm (torch.nn.utils.spectral_norm, one power '
        'iteration per D pass, BN dropped from D), hinge',
    ),
    # The RelativisticGAN CAT setting (code/unstable.sh: batch 32, z 128,
    # Adam 2e-4 (0.5, 0.999), one D update per G update), RaLSGAN.
    'ralsgan_fresh': (
        'default.py',
        {
            'loss.name': 'ralsgan',
            'train.g_samples': 'fresh_z_and_reals',
            'batch_size': 32,
            'model.z_dim': 128,
        },
        'a relativistic G step on a fresh z and a fresh real ' 'batch',
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument(
      '--peer', required=True, help='a Python with torch, numpy and pillow'
  )
  p.add_argument(
      '--loss',
      choices=_LOSSES,
      action='append',
      help='repeat for several losses (default: nsgan unless '
      '--recipe is given)',
  )
  p.add_argument(
      '--recipe',
      choices=sorted(RECIPES),
      action='append',
      help='repeat for several recipes',
  )
  p.add_argument(
      '--sn-g-step-u',
      choices=('keep', 'drop'),
      default='keep',
      help="peer_replay.py's option: 'drop' replays spectral "
      "norm without the power iterations of the G step's D "
      'passes (a diagnostic)',
  )
  p.add_argument('--steps', type=int, default=5)
  p.add_argument(
      '--batch',
      type=int,
      default=None,
      help="global batch (default: 64 for --loss, the config's "
      'for --recipe)',
  )
  p.add_argument(
      '--width',
      type=int,
      default=None,
      help="--recipe: g_width = d_width (default: the config's)",
  )
  p.add_argument('--seed', type=int, default=0)
  p.add_argument(
      '--data-dir',
      default='',
      help='a folder of 64x64 faces (random pixels when not given)',
  )
  p.add_argument(
      '--peer-script',
      required=True,
      help='peer_torch_dcgan.py, the PyTorch reference DCGAN-64',
  )
  p.add_argument(
      '--factor',
      type=float,
      default=2.0,
      help="pass when catgan_jax's worst relative error against "
      "the float64 replay is at most this times PyTorch float32's",
  )
  p.add_argument('--out', default=None)
  return p.parse_args(argv)


def _modules(tree: dict[str, Any], prefix: str) -> list[str]:
  """Names of the modules `prefix`_0, _1, ... of a variables tree, in order."""
  names = [n for n in tree if n.startswith(prefix + '_')]
  return sorted(names, key=lambda n: int(n.rsplit('_', 1)[1]))


def _sn_u(variables: dict[str, Any]) -> list[tuple[str, str]]:
  """(SpectralNorm_i, 'Conv_i/kernel/u') of each spectrally normalised layer:
  where `layers.SpectralNorm` keeps the kernel's u."""
  stats = variables.get('batch_stats', {})
  return [
      (name, next(k for k in stats[name] if k.endswith('kernel/u')))
      for name in _modules(stats, 'SpectralNorm')
  ]


def to_torch_layout(variables: dict[str, Any], net: str) -> dict[str, Any]:
  """A DCGAN-64 network's variables as `peer_replay.py`'s named arrays.

  Args:
    variables: {'params': ..., 'batch_stats': ...} of one network.
    net: 'g' or 'd'.

  Returns:
    {'<net>_conv_<i>': weight, '<net>_bn_<i>_<field>': vector,
    'd_sn_<i>_u': torch's `weight_u` [out]}, float32, in torch's layouts
    (`models/torch_layout.py`) and the peer's module order. catgan_jax's u
    [1, out] is torch's: both power-iterate the weight as (out, -1), the
    output channels in the same order.
  """
  params = variables['params']
  if net == 'g':
    kernels = [torch_layout.dense_to_torch(params['Dense_0']['kernel'])]
    kernels += [
        torch_layout.conv_transpose_to_torch(params[n]['kernel'])
        for n in _modules(params, 'ConvTranspose2x')
    ]
  else:
    kernels = [
        torch_layout.conv_to_torch(params[n]['kernel'])
        for n in _modules(params, 'Conv')
    ]
  out = {
      f'{net}_conv_{i}': np.ascontiguousarray(k, np.float32)
      for i, k in enumerate(kernels)
  }
  for i, name in enumerate(_modules(params, 'BatchNorm')):
    for field, (collection, key) in _BN_FIELDS.items():
      out[f'{net}_bn_{i}_{field}'] = np.asarray(
          variables[collection][name][key], np.float32
      )
  for i, (sn, key) in enumerate(_sn_u(variables)):
    out[f'{net}_sn_{i}_u'] = np.asarray(
        variables['batch_stats'][sn][key][0], np.float32
    )
  return out


def from_torch_layout(
    arrays: dict[str, np.ndarray], like: dict[str, Any], net: str
) -> dict[str, Any]:
  """`to_torch_layout`'s inverse: `arrays` as the variables tree `like`.

  Entries `to_torch_layout` does not write (spectral norm's sigma) keep
  `like`'s values; arrays keep their dtype (float64 from a float64 replay).
  """
  out = jax.tree.map(np.asarray, like)
  params = out['params']
  if net == 'g':
    params['Dense_0']['kernel'] = torch_layout.dense_from_torch(
        arrays['g_conv_0']
    )
    for i, n in enumerate(_modules(params, 'ConvTranspose2x')):
      params[n]['kernel'] = torch_layout.conv_transpose_from_torch(
          arrays[f'g_conv_{i + 1}']
      )
  else:
    for i, n in enumerate(_modules(params, 'Conv')):
      params[n]['kernel'] = torch_layout.conv_from_torch(arrays[f'd_conv_{i}'])
  for i, name in enumerate(_modules(params, 'BatchNorm')):
    for field, (collection, key) in _BN_FIELDS.items():
      out[collection][name][key] = arrays[f'{net}_bn_{i}_{field}']
  for i, (sn, key) in enumerate(_sn_u(out)):
    out['batch_stats'][sn][key] = arrays[f'{net}_sn_{i}_u'][None]
  return out


def _variables(ts) -> dict[str, Any]:
  return {'params': ts.params, 'batch_stats': ts.batch_stats}


def _state_in_torch_layout(state) -> dict[str, np.ndarray]:
  state = jax.device_get(state)
  return {
      **to_torch_layout(_variables(state.g), 'g'),
      **to_torch_layout(_variables(state.d), 'd'),
  }


def real_batches(
    data_dir: str, steps: int, batch: int, seed: int
) -> tuple[list[np.ndarray], str]:
  """`steps` uint8 batches [batch, 64, 64, 3] of faces from `data_dir` (or of
  uniform random pixels when it does not exist), and where they came from.

  The images are listed and decoded as the trainer's folder source does;
  unusable files are skipped, and others drawn in their place.
  """
  rng = np.random.default_rng(seed)
  if not os.path.isdir(data_dir):
    return (
        [
            rng.integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8)
            for _ in range(steps)
        ],
        'uniform random pixels',
    )
  paths = sources.list_image_files(data_dir)
  picked = rng.choice(
      len(paths), size=min(len(paths), steps * batch * 2), replace=False
  )
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
    raise SystemExit(
        f'--data-dir: {data_dir!r} has {len(images)} usable '
        f'images, {steps * batch} needed.'
    )
  stacked = np.stack(images)
  return [stacked[t * batch : (t + 1) * batch] for t in range(steps)], data_dir


def _optim(config, name: str) -> float:
  """optim.<name> of both networks; refuses a config where they differ
  (the replays take one value per optimiser setting)."""
  optim = config.optim
  values = {net: optim[f'{net}_{name}'] for net in ('g', 'd')}
  values = {net: optim[name] if v is None else v for net, v in values.items()}
  if values['g'] != values['d']:
    raise SystemExit(
        f'optim.g_{name}={values["g"]!r} and optim.d_{name}='
        f'{values["d"]!r}: the replay has one {name}'
    )
  return values['g']


def replay_flags(config) -> list[str]:
  """`peer_replay.py`'s flags for `config`: which reference loop replays it.

  Raises SystemExit for a config no reference loop runs.
  """
  cfg_loss, cfg_train = config.loss, config.train
  g_samples = cfg_train.get('g_samples', 'reuse')
  flags = [
      '--g-lr',
      str(config.optim.g_lr),
      '--d-lr',
      str(config.optim.d_lr),
      '--n-critic',
      str(cfg_train.d_steps_per_g_step),
  ]
  if cfg_train.d_every_k_steps != 1:
    raise SystemExit('train.d_every_k_steps != 1: no reference loop skips D')
  if cfg_loss.name == 'wgan':
    if cfg_loss.clip <= 0 or cfg_loss.get('clip_mode') != 'before_update':
      raise SystemExit(
          "loss.name='wgan': WGAN.py clamps at the start of "
          "each critic iteration (loss.clip_mode='before_"
          "update', loss.clip > 0)"
      )
    if _optim(config, 'name') != 'rmsprop':
      raise SystemExit("loss.name='wgan': WGAN.py uses RMSprop")
    warm = step_lib._critic_warmup(cfg_train)  # pylint: disable=protected-access
    return [
        '--recipe',
        'wgan',
        '--clip',
        str(cfg_loss.clip),
        '--warm-critic',
        *map(str, warm),
        *flags,
    ]
  if g_samples == 'reuse':
    raise SystemExit(
        f'train.g_samples={g_samples!r}: the reference loops '
        'draw a fresh z for G (use --loss for the DCGAN loop)'
    )
  if _optim(config, 'name') != 'adam':
    raise SystemExit(f'loss.name={cfg_loss.name!r}: its reference uses Adam')
  flags += [
      '--b1',
      str(_optim(config, 'b1')),
      '--b2',
      str(_optim(config, 'b2')),
  ]
  if cfg_loss.name == 'wgan_gp':
    return [
        '--recipe',
        'wgan_gp',
        '--gp-weight',
        str(cfg_loss.gp_weight),
        *flags,
    ]
  if cfg_loss.gp_weight or cfg_loss.clip or cfg_train.d_steps_per_g_step != 1:
    raise SystemExit(
        'GAN_losses_iter.py (Diters 1) is replayed without '
        'penalties, clipping or n_critic'
    )
  flags = ['--recipe', 'losses_iter', '--loss', cfg_loss.name, *flags]
  return flags + (['--spectral'] if config.model.spectral_norm else [])


def replay(
    peer: str,
    flags: list[str],
    dtype: str,
    inputs: str,
    outputs: str,
    peer_script: str,
) -> tuple[dict, dict]:
  """Runs `peer_replay.py`; returns its (final weights, per-step logs)."""
  cmd = [
      peer,
      os.path.join(_REPO, 'tools', 'torch_peer', 'peer_replay.py'),
      inputs,
      outputs,
      '--dtype',
      dtype,
      *flags,
      '--peer-script',
      peer_script,
  ]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if proc.returncode:
    raise SystemExit(
        f'peer_replay.py --dtype {dtype} failed: ' f'{proc.stderr[-2000:]}'
    )
  arrays = dict(np.load(outputs))
  logs = {
      k[len('log_') :]: arrays.pop(k)
      for k in list(arrays)
      if k.startswith('log_')
  }
  return arrays, logs


def replay_inputs(
    initial: dict[str, np.ndarray],
    draws: dict[str, list],
    batches: list[np.ndarray],
    fresh_reals: bool,
) -> dict[str, np.ndarray]:
  """`peer_replay.py`'s inputs: weights, each iteration's draws and reals.

  With train.g_samples='fresh_z_and_reals' an iteration's batch holds D's
  reals in its even rows and G's in its odd rows (`step.make_train_step`).
  """
  out = dict(initial)
  for name, values in draws.items():
    out.update({f'{name}_{t}': v for t, v in enumerate(values)})
  for t, b in enumerate(batches):
    if fresh_reals:
      out[f'real_{t}'], out[f'real_g_{t}'] = b[0::2], b[1::2]
    else:
      out[f'real_{t}'] = b
  return out


def iteration_draws(config, rng, steps: int) -> dict[str, list[np.ndarray]]:
  """The random draws of iterations 0..steps-1 the torch side needs.

  'z' (D step) always; 'z_g' (the G step's fresh z) unless
  train.g_samples='reuse'; 'gp_u' (the interpolation weights) with a
  gradient penalty, drawn as `losses.gradient_penalty` draws them.
  """
  batch, z_dim = config.batch_size, config.model.z_dim
  draws = {'z': [], 'z_g': [], 'gp_u': []}
  for t in range(steps):
    keys = step_lib.iteration_keys(rng, t)
    draws['z'].append(np.asarray(step_lib.latents(keys['z'], batch, z_dim)))
    draws['z_g'].append(np.asarray(step_lib.latents(keys['z_g'], batch, z_dim)))
    # losses.gradient_penalty: eps [B, 1, 1, 1] ~ U[0, 1) from its key.
    draws['gp_u'].append(
        np.asarray(
            jax.random.uniform(keys['gp'], (batch, 1, 1, 1), dtype=np.float32)
        )
    )
  if config.train.get('g_samples', 'reuse') == 'reuse':
    del draws['z_g']
  if not config.loss.gp_weight:
    del draws['gp_u']
  return draws


def run_catgan_jax(config, batches: list[np.ndarray]):
  """Runs the trainer's compiled step over `batches`.

  Returns:
    (initial state, initial state in torch layout, final state, final state
    in torch layout, metrics per step as lists).
  """
  mesh = parallel.create_mesh()
  run = train.build(config, mesh)
  state, step_fn = run.state, run.train_step
  initial_state = jax.device_get(state)
  initial = _state_in_torch_layout(state)
  logs = {k: [] for k in _LOG_KEYS}
  for t, images in enumerate(batches):
    state, metrics = step_fn(
        state, jax.device_put(images, parallel.batch_sharded(mesh)), t
    )
    metrics = jax.device_get(metrics)
    for k in logs:
      logs[k].append(float(metrics[k]) if k in metrics else np.nan)
  final = jax.device_get(state)
  return (initial_state, initial, final, _state_in_torch_layout(final), logs)


def g_update_steps(config, steps: int) -> list[int]:
  """The iterations at which catgan_jax's schedule updates G."""
  return [t for t in range(steps) if step_lib.update_phase(config, t)[1]]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _series_err(values, ref_values, steps: list[int]) -> float:
  return max(
      (
          abs(values[t] - ref_values[t]) / max(abs(ref_values[t]), 1e-6)
          for t in steps
      ),
      default=0.0,
  )


def _errors(
    initial, final, logs, ref_final, ref_logs, g_steps: list[int]
) -> dict[str, Any]:
  """One float32 run's errors against the float64 reference run.

  D's losses and gradient norms are compared at every iteration, G's at the
  iterations that update G, the penalty where there is one.
  """
  all_steps = list(range(len(ref_logs['d_loss'])))
  losses = {
      'd_loss': _series_err(logs['d_loss'], ref_logs['d_loss'], all_steps),
      'g_loss': _series_err(logs['g_loss'], ref_logs['g_loss'], g_steps),
  }
  if not np.all(np.isnan(ref_logs.get('gp', [np.nan]))):
    losses['gp'] = _series_err(logs['gp'], ref_logs['gp'], all_steps)
  grad_norms = {}
  for k, steps in (('d_grad_norm', all_steps), ('g_grad_norm', g_steps)):
    if k in ref_logs and not np.all(np.isnan(ref_logs[k])):
      grad_norms[k] = _series_err(logs[k], ref_logs[k], steps)
  weights = {}
  for name, w0 in initial.items():
    if name.startswith('d_bn') and 'running' in name:
      continue  # Not used by any step (see the module docstring).
    w0 = w0.astype(np.float64)
    weights[name] = _rel(final[name] - w0, ref_final[name] - w0)
  return {
      'loss_rel_err': losses,
      'grad_norm_rel_err': grad_norms,
      'weight_change_rel_err': weights,
      'max_loss_rel_err': max(losses.values()),
      'median_weight_change_rel_err': float(np.median(list(weights.values()))),
      'max_weight_change_rel_err': max(weights.values()),
  }


def compare(
    initial, runs: dict[str, tuple[dict, dict]], g_steps: list[int]
) -> dict[str, Any]:
  """Errors of the float32 runs against the float64 reference.

  Args:
    initial: the initial weights, torch layout.
    runs: name -> (final weights, per-step logs), with 'pytorch_float64'
      the reference.
    g_steps: the iterations that update G.

  Returns:
    {'per_step': every run's logs, '<run>': its errors} for each float32 run.
  """
  ref_final, ref_logs = runs['pytorch_float64']
  out = {
      'per_step': {
          k: {
              name: [None if np.isnan(x) else float(x) for x in logs[k]]
              for name, (_, logs) in runs.items()
          }
          for k in ref_logs
          if not np.all(np.isnan(ref_logs[k]))
      }
  }
  for name, (final, logs) in runs.items():
    if name != 'pytorch_float64':
      out[name] = _errors(initial, final, logs, ref_final, ref_logs, g_steps)
  return out


def recipe_config(
    name: str, width: int | None = None, batch: int | None = None
):
  """The config of recipe `name` (`RECIPES`), at `width` and `batch`."""
  path, overrides, _ = RECIPES[name]
  config = (
      default_config.get_config()
      if path == 'default.py'
      else bench.load_config(os.path.join(_REPO, 'configs', path))
  )
  config.data.source = 'folder'
  config.train.ema_decay = 0.0
  for field, value in overrides.items():
    node = config
    *parents, leaf = field.split('.')
    for part in parents:
      node = node[part]
    node[leaf] = value
  if width:
    config.model.g_width = config.model.d_width = width
  if batch:
    config.batch_size = batch
  return config


def run(
    config,
    batches: list[np.ndarray],
    peer: str,
    flags: list[str],
    peer_script: str,
    dtypes=('float32', 'float64'),
):
  """catgan_jax's run and the replays of `batches`.

  Returns:
    (catgan_jax's (initial state, final state), initial weights in torch
    layout, {run name: (final weights, logs)}, the replay's inputs, seconds
    per run).
  """
  t0 = time.perf_counter()
  initial_state, initial, final_state, jax_final, jax_logs = run_catgan_jax(
      config, batches
  )
  runs = {'catgan_jax': (jax_final, jax_logs)}
  seconds = {'catgan_jax': round(time.perf_counter() - t0, 1)}
  fresh_reals = config.train.get('g_samples', 'reuse') == 'fresh_z_and_reals'
  inputs = replay_inputs(
      initial,
      iteration_draws(config, initial_state.rng, len(batches)),
      batches,
      fresh_reals,
  )
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'in.npz')
    np.savez(path, **inputs)
    for dtype in dtypes:
      name, t0 = f'pytorch_{dtype}', time.perf_counter()
      runs[name] = replay(
          peer,
          flags,
          dtype,
          path,
          os.path.join(tmp, f'{dtype}.npz'),
          peer_script,
      )
      seconds[name] = round(time.perf_counter() - t0, 1)
  return (initial_state, final_state), initial, runs, inputs, seconds


def check(args: argparse.Namespace, name: str) -> dict[str, Any]:
  """The comparison of one loss or recipe (see the module docstring)."""
  if name in RECIPES:
    config = recipe_config(name, args.width, args.batch)
    flags = replay_flags(config) + ['--sn-g-step-u', args.sn_g_step_u]
  else:
    config = bench.peer_matched_config(
        bench.load_config(os.path.join(_REPO, 'configs', 'dcgan64.py')),
        args.batch or 64,
        'float32',
        name,
    )
    config.train.ema_decay = 0.0
    flags = [
        '--recipe',
        'dcgan',
        '--loss',
        name,
        '--g-lr',
        str(bench.PEER_LR),
        '--d-lr',
        str(bench.PEER_LR),
    ]
  config.seed = args.seed
  batches, source = real_batches(
      args.data_dir, args.steps, step_lib.input_batch_size(config), args.seed
  )
  _, initial, runs, _, seconds = run(
      config, batches, args.peer, flags, args.peer_script
  )
  g_steps = g_update_steps(config, args.steps)
  result = compare(initial, runs, g_steps)
  torch_g_steps = [
      t
      for t, v in enumerate(runs['pytorch_float64'][1]['g_loss'])
      if not np.isnan(v)
  ]
  worst = {
      run_name: max(
          result[run_name]['max_loss_rel_err'],
          result[run_name]['max_weight_change_rel_err'],
      )
      for run_name in ('catgan_jax', 'pytorch_float32')
  }
  # The first D loss is one forward pass of the initial weights, before any
  # update can amplify rounding (the first G loss already sees the updated
  # D): it must agree to float32 precision.
  first_d = [
      result['per_step']['d_loss'][run_name][0]
      for run_name in ('catgan_jax', 'pytorch_float64')
  ]
  first = abs(first_d[0] - first_d[1]) / max(abs(first_d[1]), 1e-6)
  result.update(
      {
          'data': source,
          'worst_rel_err': worst,
          'seconds': seconds,
          'first_d_loss_rel_err': first,
          'g_update_steps': g_steps,
          'replay_flags': flags,
          'config': {
              'batch_size': config.batch_size,
              'g_width': config.model.g_width,
              'd_width': config.model.d_width,
              'z_dim': config.model.z_dim,
          },
          'passed': bool(
              first <= FIRST_D_LOSS_RTOL
              and g_steps == torch_g_steps
              and worst['catgan_jax']
              <= args.factor * max(worst['pytorch_float32'], 1e-6)
          ),
      }
  )
  if g_steps != torch_g_steps:
    result['torch_g_update_steps'] = torch_g_steps
  if name in RECIPES:
    result['recipe'] = {
        'config': RECIPES[name][0],
        'overrides': RECIPES[name][1],
        'checks': RECIPES[name][2],
    }
  return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  names = (args.loss or []) + (args.recipe or [])
  names = names or ['nsgan']
  results = {name: check(args, name) for name in names}
  for name, r in results.items():
    print(
        f'{name}: worst relative error against float64: catgan_jax '
        f'{r["worst_rel_err"]["catgan_jax"]:.3g}, PyTorch float32 '
        f'{r["worst_rel_err"]["pytorch_float32"]:.3g}; first D loss '
        f'{r["first_d_loss_rel_err"]:.2g} -> '
        f'{"pass" if r["passed"] else "FAIL"}'
    )
  out = {
      'losses': results,
      'steps': args.steps,
      'batch': args.batch,
      'width': args.width,
      'seed': args.seed,
      'factor': args.factor,
      'sn_g_step_u': args.sn_g_step_u,
      'passed': all(r['passed'] for r in results.values()),
      'machine': bench.machine_info(),
      'code_digest': bench.code_digest(),
      'command': ' '.join(sys.argv),
  }
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
      json.dump(out, f, indent=1)
  if not out['passed']:
    sys.exit(1)
  return out


if __name__ == '__main__':
  main()
