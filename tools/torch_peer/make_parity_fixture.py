"""Writes tests/fixtures/torch_dcgan64_step.npz: one DCGAN-64 iteration of the PyTorch peer.

    /path/to/torch-venv/bin/python tools/torch_peer/make_parity_fixture.py

Runs the PyTorch reference DCGAN (`../shared/bench/peer_torch_dcgan.py`, at
narrow widths so the file stays small) on fixed random images and latents,
and saves its initial weights, generated images, D and G losses and the
gradients of both networks. `tests/torch_parity_test.py` loads the weights
into catgan_jax's DCGAN and checks it computes the same numbers, so the
fixture needs torch once, the test never.
"""

import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peer_training_curve as curve  # pylint: disable=g-import-not-at-top,wrong-import-position

peer = curve.load_peer(curve.DEFAULT_PEER_SCRIPT)
NZ, NGF, NDF, BATCH = 8, 4, 4, 4


def main():
  torch.manual_seed(0)
  g, d = peer.generator(nz=NZ, ngf=NGF), peer.discriminator(ndf=NDF)
  g.apply(curve.dcgan_init)
  d.apply(curve.dcgan_init)
  rng = np.random.default_rng(0)
  # uint8 images, scaled to [-1, 1] as catgan_jax's step does.
  real_u8 = rng.integers(0, 256, (BATCH, 64, 64, 3), dtype=np.uint8)
  real = torch.tensor(real_u8.transpose(0, 3, 1, 2).astype(np.float32)
                      / 127.5 - 1.0)
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
  d_loss = (bce(real_logits, torch.ones_like(real_logits))
            + bce(fake_logits, torch.zeros_like(fake_logits)))
  d_loss.backward()
  for name, p in d.named_parameters():
    out[f'd_grad.{name}'] = p.grad.numpy().copy()
  g_logits = d(fake)
  g_loss = bce(g_logits, torch.ones_like(g_logits))
  g.zero_grad()
  g_loss.backward()
  for name, p in g.named_parameters():
    out[f'g_grad.{name}'] = p.grad.numpy().copy()
  out.update(fake0=fake[0].detach().numpy(), d_loss=d_loss.item(),
             g_loss=g_loss.item(), torch_version=torch.__version__)
  path = os.path.join(HERE, '..', '..', 'tests', 'fixtures',
                      'torch_dcgan64_step.npz')
  np.savez_compressed(path, **out)
  print(f'wrote {path}: d_loss={d_loss.item():.6f} g_loss={g_loss.item():.6f}')


if __name__ == '__main__':
  main()
