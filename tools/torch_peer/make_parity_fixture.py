"""Writes the PyTorch parity fixtures of assets/ (small: narrow widths).

    /path/to/torch-venv/bin/python tools/torch_peer/make_parity_fixture.py \\
        --peer-script /path/to/peer_torch_dcgan.py
    .venv/bin/python tools/torch_peer/make_parity_fixture.py \\
        --recipe wgan --peer /path/to/torch-venv/bin/python \\
        --peer-script /path/to/peer_torch_dcgan.py

Without `--recipe` (under a Python with torch): `torch_dcgan64_step.npz`,
one DCGAN-64 iteration of the PyTorch reference DCGAN
(`peer_torch_dcgan.py` of `--peer-script`, at narrow widths) on fixed
random images and latents: its initial weights, generated images, D and G
losses and the gradients of both networks. `tests/torch_parity_test.py`
loads the weights into catgan_jax's DCGAN and checks it computes the same
numbers.

With `--recipe` (under catgan_jax's Python, torch under `--peer`):
`torch_<recipe>_steps.npz`, a few iterations of a `peer_equivalence.RECIPES`
config at z 8, widths 4, batch 4 on fixed random images, replayed in float64
with its reference's training loop (`peer_replay.py`). It holds the config
(its fields that differ from configs/default.py), the initial state
(catgan_jax's initialisation and base key), the real batches, each
iteration's D latents (to check that the step still draws what the replay
was given), and the replay's per-iteration losses, gradient norms and
penalty and its final weights, in catgan_jax's layout.
`tests/torch_reference_loops_test.py` runs catgan_jax's step from that state
and requires the replay's numbers. For hinge_sn it also holds the replay
with `--sn-g-step-u drop` (see `peer_replay.py`).

Either way the fixture needs torch once, the test never.
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
NZ, NGF, NDF, BATCH = 8, 4, 4, 4
# The recipe fixtures' widths (ngf = ndf): 8k parameters, so ~30 KiB a copy.
RECIPE_WIDTH = 2
FIXTURES = os.path.join(HERE, '..', '..', 'assets')
# Iterations per recipe: enough for each path the recipe checks (wgan: both
# kinds of critic group, G at 2, 4, 7, 9; wgan_gp: a group of 5 and the
# next critic update; the others: D and G updates from a stepped u / a
# stepped G).
STEPS = {'wgan': 10, 'wgan_gp': 6, 'hinge_sn': 3, 'ralsgan_fresh': 3}


def dcgan_step_fixture(peer_script: str) -> None:
  """Writes torch_dcgan64_step.npz (see the module docstring)."""
  import torch  # pylint: disable=g-import-not-at-top
  import peer_training_curve as curve  # pylint: disable=g-import-not-at-top

  peer = curve.load_peer(peer_script)
  torch.manual_seed(0)
  g, d = peer.generator(nz=NZ, ngf=NGF), peer.discriminator(ndf=NDF)
  g.apply(curve.dcgan_init)
  d.apply(curve.dcgan_init)
  rng = np.random.default_rng(0)
  # uint8 images, scaled to [-1, 1] as catgan_jax's step does.
  real_u8 = rng.integers(0, 256, (BATCH, 64, 64, 3), dtype=np.uint8)
  real = torch.tensor(
      real_u8.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
  )
  z = torch.tensor(rng.normal(size=(BATCH, NZ)).astype(np.float32))
  out = {'real_u8': real_u8, 'z': z.numpy()}
  for name, p in g.named_parameters():
    out[f'g.{name}'] = p.detach().numpy().copy()
  for name, p in d.named_parameters():
    out[f'd.{name}'] = p.detach().numpy().copy()

  # The peer's iteration: D on real and detached fake, then G through D.
  bce = torch.nn.BCEWithLogitsLoss()
  fake = g(z.view(BATCH, NZ, 1, 1))
  real_logits, fake_logits = d(real), d(fake.detach())
  d_loss = bce(real_logits, torch.ones_like(real_logits)) + bce(
      fake_logits, torch.zeros_like(fake_logits)
  )
  d_loss.backward()
  for name, p in d.named_parameters():
    out[f'd_grad.{name}'] = p.grad.numpy().copy()
  g_logits = d(fake)
  g_loss = bce(g_logits, torch.ones_like(g_logits))
  g.zero_grad()
  g_loss.backward()
  for name, p in g.named_parameters():
    out[f'g_grad.{name}'] = p.grad.numpy().copy()
  out.update(
      fake0=fake[0].detach().numpy(),
      d_loss=d_loss.item(),
      g_loss=g_loss.item(),
      torch_version=torch.__version__,
  )
  path = os.path.join(FIXTURES, 'torch_dcgan64_step.npz')
  np.savez_compressed(path, **out)
  print(f'wrote {path}: d_loss={d_loss.item():.6f} g_loss={g_loss.item():.6f}')


def _flatten(tree, prefix: str) -> dict[str, np.ndarray]:
  """{prefix.key.key...: array}; '.' since spectral norm's names hold '/'."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top

  return {
      f'{prefix}.{k}': np.asarray(v)
      for k, v in traverse_util.flatten_dict(tree, sep='.').items()
  }


def _config_diff(config) -> dict[str, object]:
  """config's dotted fields that differ from configs/default.py's."""
  from configs import default  # pylint: disable=g-import-not-at-top

  def flat(d, prefix=''):
    out = {}
    for k, v in d.items():
      if isinstance(v, dict):
        out.update(flat(v, f'{prefix}{k}.'))
      else:
        out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
    return out

  base = flat(default.get_config().to_dict())
  return {k: v for k, v in flat(config.to_dict()).items() if base.get(k) != v}


def recipe_fixture(recipe: str, peer: str, peer_script: str) -> None:
  """Writes torch_<recipe>_steps.npz (see the module docstring)."""
  import jax  # pylint: disable=g-import-not-at-top
  import peer_equivalence as pe  # pylint: disable=g-import-not-at-top

  config = pe.recipe_config(recipe, RECIPE_WIDTH, BATCH)
  config.model.z_dim = NZ
  config.seed = 0
  steps = STEPS[recipe]
  rng = np.random.default_rng(0)
  size = pe.step_lib.input_batch_size(config)
  # Random 8x8 pixel blocks: any images do, these compress.
  batches = [
      np.kron(
          rng.integers(0, 256, (size, 8, 8, 3), dtype=np.uint8),
          np.ones((1, 8, 8, 1), np.uint8),
      )
      for _ in range(steps)
  ]
  flags = pe.replay_flags(config)
  runs_flags = {'torch': flags + ['--sn-g-step-u', 'keep']}
  if config.model.spectral_norm:
    runs_flags['torch_sn_u_drop'] = flags + ['--sn-g-step-u', 'drop']
  out = {
      'config_json': json.dumps(_config_diff(config)),
      'replay_flags': ' '.join(flags),
  }
  for name, run_flags in runs_flags.items():
    (state0, _), initial, runs, inputs, _ = pe.run(
        config, batches, peer, run_flags, peer_script, dtypes=('float64',)
    )
    final, logs = runs['pytorch_float64']
    jax_logs = runs['catgan_jax'][1]
    g_steps = pe.g_update_steps(config, steps)
    print(
        f'{recipe} {name}: G updates at {g_steps}; catgan_jax float32 vs '
        'torch float64:'
    )
    for k, v in logs.items():
      if np.all(np.isnan(v)):
        continue
      at = g_steps if k.startswith('g_') else range(steps)
      err = max(abs(jax_logs[k][t] - v[t]) / abs(v[t]) for t in at)
      print(f'  {k}: {err:.2g}')
      out[f'{name}.log.{k}'] = v.astype(np.float64)
    g_tree = pe.from_torch_layout(final, pe._variables(state0.g), 'g')  # pylint: disable=protected-access
    d_tree = pe.from_torch_layout(final, pe._variables(state0.d), 'd')  # pylint: disable=protected-access
    # D's BatchNorm running statistics never enter a step (torch's G step
    # moves them too), nor does spectral norm's logged sigma: of D's state
    # only the parameters and u are kept. Each as its change over the run,
    # in float32 (the change's own precision).
    kept = _flatten({'g': g_tree, 'd': {'params': d_tree['params']}}, '')
    for sn, key in pe._sn_u(d_tree):  # pylint: disable=protected-access
      kept[f'.d.batch_stats.{sn}.{key}'] = np.asarray(
          d_tree['batch_stats'][sn][key]
      )
    initial_flat = _flatten(
        jax.device_get(
            {'g': pe._variables(state0.g), 'd': pe._variables(state0.d)}
        ),
        '',
    )  # pylint: disable=protected-access
    for k, v in kept.items():
      out[f'{name}.change{k}'] = (v - initial_flat[k]).astype(np.float32)
  variables = {'g': pe._variables(state0.g), 'd': pe._variables(state0.d)}  # pylint: disable=protected-access
  out.update(_flatten(jax.device_get(variables), 'init'))
  out['rng'] = np.asarray(
      jax.random.key_data(state0.rng)
      if jax.dtypes.issubdtype(state0.rng.dtype, jax.dtypes.prng_key)
      else state0.rng
  )
  for t, b in enumerate(batches):
    out[f'real_{t}'] = b
    out[f'z_{t}'] = inputs[f'z_{t}']
  path = os.path.join(FIXTURES, f'torch_{recipe}_steps.npz')
  np.savez_compressed(path, **out)
  print(f'wrote {path} ({os.path.getsize(path) // 1024} KiB)')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument(
      '--recipe',
      action='append',
      help='a peer_equivalence.RECIPES name (repeatable); '
      'none: the DCGAN step fixture',
  )
  p.add_argument('--peer', help='--recipe: a Python with torch')
  p.add_argument(
      '--peer-script',
      required=True,
      help='peer_torch_dcgan.py, the PyTorch reference DCGAN-64',
  )
  a = p.parse_args()
  if not a.recipe:
    dcgan_step_fixture(a.peer_script)
    return
  if not a.peer:
    sys.exit('--recipe needs --peer')
  for recipe in a.recipe:
    recipe_fixture(recipe, a.peer, a.peer_script)


if __name__ == '__main__':
  main()
