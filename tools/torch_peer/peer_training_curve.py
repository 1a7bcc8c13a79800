#!/usr/bin/env python3
"""The PyTorch peer's DCGAN-64 trained on real faces: a training-curve cross-check.

When a loss does not train in catgan_jax, is that the recipe or a bug? This
script answers it with code that shares nothing with catgan_jax: it trains
the PyTorch reference networks (`generator()` and `discriminator()` of
`peer_torch_dcgan.py`, with the DCGAN initialisation: N(0, 0.02) weights, BN
scales N(1, 0.02)) on a folder of images, with the loss written out here in
torch, Adam (beta1 0.5), one D update on a real and a fake batch and one G
update per iteration. Every `--every` iterations it logs the losses, D's mean
logits, and `sample_std`: the pixel std across 64 fixed-noise samples of G in
eval mode, in [0, 1] units, as catgan_jax logs it at every sample grid
(`catgan_jax.sampling.pixel_std_across_samples`). Compare the two curves.

With `--budget-min`, it trains for that many minutes of training wall time
instead of `--steps` (the logging and sampling are not counted), and with
`--samples-out` it writes `--num-samples` eval-mode samples of G at each of
`--sample-points` evenly spaced points of the run (of the budget, or of the
steps) to one .npz: `images_<k>` uint8 [N, 64, 64, 3] and, per point,
`steps` and `train_wall_s`, and `batch` and the load averages before and
after. `benchmarks/time_to_quality.py --samples` scores
that file with catgan_jax's scorer, so the peer's row of the quality-per-
budget table comes from the same FID as catgan_jax's rows.

Runs under a Python with torch, numpy and pillow, not catgan_jax's venv:

    python3 -m venv /tmp/torch
    /tmp/torch/bin/pip install torch==2.13.0 numpy pillow==12.1.0
    /tmp/torch/bin/python tools/torch_peer/peer_training_curve.py \\
        --peer-script /path/to/peer_torch_dcgan.py \\
        --data-dir /path/to/cat_faces_64 --loss lsgan --lr 1e-4 \\
        --steps 500 --out tools/torch_peer/results/peer_curve_lsgan.json

Writes one JSON object (command, machine, torch version, the curve).
"""
import argparse
import contextlib
import importlib.util
import json
import os
import platform
import sys
import time

import numpy as np
from PIL import Image
import torch
from torch import nn
from torch.nn import functional as F

IMAGE_SIZE = 64
NUM_FIXED = 64


def _bce(logits, target):
  return F.binary_cross_entropy_with_logits(
      logits, torch.full_like(logits, target)
  )


def _d_loss(name, real, fake):
  """D's loss of raw logits, as the papers (and their reference code) write it."""
  if name == 'nsgan':
    return _bce(real, 1.0) + _bce(fake, 0.0)
  if name == 'lsgan':
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()
  if name == 'hinge':
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
  if name == 'rasgan':
    return (_bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0)) / 2
  if name == 'ralsgan':
    return (
        ((real - fake.mean() - 1) ** 2).mean()
        + ((fake - real.mean() + 1) ** 2).mean()
    ) / 2
  raise ValueError(f'--loss: unknown loss {name!r}')


def _g_loss(name, real, fake):
  """G's loss; `real` is D(real) detached (used by the relativistic losses)."""
  if name == 'nsgan':
    return _bce(fake, 1.0)
  if name == 'lsgan':
    return 0.5 * ((fake - 1) ** 2).mean()
  if name == 'hinge':
    return -fake.mean()
  if name == 'rasgan':
    return (_bce(fake - real.mean(), 1.0) + _bce(real - fake.mean(), 0.0)) / 2
  if name == 'ralsgan':
    return (
        ((fake - real.mean() - 1) ** 2).mean()
        + ((real - fake.mean() + 1) ** 2).mean()
    ) / 2
  raise ValueError(f'--loss: unknown loss {name!r}')


LOSSES = ('nsgan', 'lsgan', 'hinge', 'rasgan', 'ralsgan')


def load_images(data_dir):
  """All readable images of `data_dir` as uint8 [N, 3, 64, 64]; bad files are
  skipped and reported on stderr."""
  if not os.path.isdir(data_dir):
    sys.exit(f'--data-dir: {data_dir!r} is not a directory')
  images, skipped = [], []
  for name in sorted(os.listdir(data_dir)):
    path = os.path.join(data_dir, name)
    try:
      with Image.open(path) as im:
        im = im.convert('RGB')
        if im.size != (IMAGE_SIZE, IMAGE_SIZE):
          im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        images.append(np.asarray(im))
    except (OSError, ValueError) as e:
      skipped.append(f'{name}: {e}')
  if skipped:
    print(
        f'skipped {len(skipped)} unreadable files, e.g. {skipped[0]}',
        file=sys.stderr,
    )
  if not images:
    sys.exit(f'--data-dir: no readable images in {data_dir!r}')
  return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def load_peer(path):
  """The peer script as a module (its `generator()` and `discriminator()`)."""
  if not os.path.isfile(path):
    sys.exit(f'--peer-script: no file {path!r}')
  spec = importlib.util.spec_from_file_location('peer_torch_dcgan', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def dcgan_init(m):
  """The DCGAN initialisation: N(0, 0.02) weights, BN scales N(1, 0.02)."""
  if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.normal_(m.weight, 0.0, 0.02)
  elif isinstance(m, nn.BatchNorm2d):
    nn.init.normal_(m.weight, 1.0, 0.02)
    nn.init.zeros_(m.bias)


def train_iteration(g, d, opt_g, opt_d, loss, real, z):
  """One D update on `real` and G(z), then one G update through the new D.

  Returns:
    (D loss, G loss, D's real logits, D's fake logits), the losses as floats,
    the logits those of the D update.
  """
  fake = g(z)
  opt_d.zero_grad(set_to_none=True)
  real_logits, fake_logits = d(real), d(fake.detach())
  loss_d = _d_loss(loss, real_logits, fake_logits)
  loss_d.backward()
  opt_d.step()
  opt_g.zero_grad(set_to_none=True)
  real_for_g = d(real).detach() if loss.startswith('ra') else None
  loss_g = _g_loss(loss, real_for_g, d(fake))
  loss_g.backward()
  opt_g.step()
  return (
      loss_d.item(),
      loss_g.item(),
      real_logits.detach(),
      fake_logits.detach(),
  )


@contextlib.contextmanager
def eval_mode(g):
  """G in eval mode (BatchNorm's running statistics), without gradients."""
  g.eval()
  try:
    with torch.no_grad():
      yield
  finally:
    g.train()


def samples_uint8(g, z, batch=250):
  """G's eval-mode images of latents `z`, uint8 [N, 64, 64, 3].

  Rounded as a saved image is: (x + 1) * 127.5, clipped to [0, 255].
  """
  with eval_mode(g):
    images = torch.cat([g(z[i : i + batch]) for i in range(0, len(z), batch)])
  images = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
  return images.permute(0, 2, 3, 1).contiguous().numpy()


def sample_std(g, z):
  """Pixel std across G's eval-mode samples, [0, 1] units (population std)."""
  with eval_mode(g):
    images = g(z) * 0.5
  return float(images.std(dim=0, unbiased=False).mean())


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--data-dir', required=True)
  p.add_argument('--loss', choices=LOSSES, default='nsgan')
  p.add_argument('--lr', type=float, default=2e-4, help="G's learning rate")
  p.add_argument('--d-lr', type=float, default=None, help="D's (default --lr)")
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--steps', type=int, default=500)
  p.add_argument('--every', type=int, default=100)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument(
      '--budget-min',
      type=float,
      default=0.0,
      help='train for this many minutes of training wall time instead of '
      '--steps (0: --steps)',
  )
  p.add_argument(
      '--samples-out',
      default=None,
      help=".npz for G's samples at each of --sample-points points",
  )
  p.add_argument('--num-samples', type=int, default=2000)
  p.add_argument('--sample-points', type=int, default=1)
  p.add_argument(
      '--peer-script',
      required=True,
      help='peer_torch_dcgan.py, the PyTorch reference DCGAN-64',
  )
  p.add_argument('--out', default=None, help='JSON file for the result')
  a = p.parse_args()
  if a.budget_min < 0 or a.steps < 1 or a.sample_points < 1:
    sys.exit('--budget-min must be >= 0, --steps and --sample-points >= 1')

  torch.manual_seed(a.seed)
  peer = load_peer(a.peer_script)
  g, d = peer.generator(), peer.discriminator()
  g.apply(dcgan_init)
  d.apply(dcgan_init)
  d_lr = a.d_lr or a.lr
  opt_g = torch.optim.Adam(g.parameters(), lr=a.lr, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(d.parameters(), lr=d_lr, betas=(0.5, 0.999))
  data = load_images(a.data_dir)
  z_fixed = torch.randn(NUM_FIXED, 100, 1, 1)
  # The scored latents come from their own generator, so the training
  # stream is the same with and without --samples-out.
  z_samples = torch.randn(
      a.num_samples,
      100,
      1,
      1,
      generator=torch.Generator().manual_seed(a.seed + 1),
  )
  budget_s = a.budget_min * 60
  # The sample points, as fractions of the budget or of the steps.
  marks = [(k + 1) / a.sample_points for k in range(a.sample_points)]
  saved = {
      'steps': [],
      'train_wall_s': [],
      'batch': a.batch,
      'loadavg_before': os.getloadavg(),
  }
  order, pos = torch.randperm(len(data)), 0
  curve, trained_s, step = [], 0.0, 0
  while (trained_s < budget_s) if budget_s else (step < a.steps):
    step += 1
    t0 = time.perf_counter()
    if pos + a.batch > len(data):  # A new epoch, reshuffled.
      order, pos = torch.randperm(len(data)), 0
    real = data[order[pos : pos + a.batch]].float() / 127.5 - 1.0
    pos += a.batch
    loss_d, loss_g, real_logits, fake_logits = train_iteration(
        g, d, opt_g, opt_d, a.loss, real, torch.randn(a.batch, 100, 1, 1)
    )
    trained_s += time.perf_counter() - t0
    progress = trained_s / budget_s if budget_s else step / a.steps
    if a.samples_out and len(saved['steps']) < len(marks):
      if progress >= marks[len(saved['steps'])] - 1e-9:
        saved[f'images_{len(saved["steps"])}'] = samples_uint8(g, z_samples)
        saved['steps'].append(step)
        saved['train_wall_s'].append(round(trained_s, 1))
    if step % a.every == 0 or progress >= 1:
      row = {
          'step': step,
          'd_loss': loss_d,
          'g_loss': loss_g,
          'd_real_logit': real_logits.mean().item(),
          'd_fake_logit': fake_logits.mean().item(),
          'sample_std': sample_std(g, z_fixed),
          'seconds': round(trained_s, 1),
      }
      print(json.dumps(row), flush=True)
      curve.append(row)
  saved['loadavg_after'] = os.getloadavg()
  result = {
      'system': 'pytorch-dcgan64',
      'torch': torch.__version__,
      'machine': platform.processor() or platform.machine(),
      'threads': torch.get_num_threads(),
      'command': ' '.join(sys.argv),
      'loss': a.loss,
      'g_lr': a.lr,
      'd_lr': d_lr,
      'batch': a.batch,
      'images': len(data),
      'seed': a.seed,
      'budget_min': a.budget_min,
      'loadavg_before': saved['loadavg_before'],
      'loadavg_after': saved['loadavg_after'],
      'steps': step,
      'train_wall_s': round(trained_s, 1),
      'samples': {
          'file': a.samples_out,
          'steps': saved['steps'],
          'train_wall_s': saved['train_wall_s'],
      }
      if saved['steps']
      else None,
      'curve': curve,
  }
  if a.samples_out:
    os.makedirs(os.path.dirname(os.path.abspath(a.samples_out)), exist_ok=True)
    np.savez(a.samples_out, **saved)
  if a.out:
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, 'w') as f:
      json.dump(result, f, indent=1)


if __name__ == '__main__':
  main()
