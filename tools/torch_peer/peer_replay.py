#!/usr/bin/env python3
"""Replays catgan_jax train steps with the PyTorch peer (the torch side of
`peer_equivalence.py`, which runs this; it is not meant to be run by hand).

Reads an .npz written by `peer_equivalence.py`: the initial weights of G and
D in torch layout, in module order (`g_conv_i`, `g_bn_i_{weight, bias,
running_mean, running_var}`, the same for `d_`), and for every step the
latents `z_t` [B, 100] and the uint8 real batch `real_t` [B, 64, 64, 3].
Builds the peer's networks (`peer_torch_dcgan.py`) in `--dtype`, loads the
weights, and runs the steps: one D update on the real and the fake batch, then one G
update through D(fake), Adam with the given rates and beta1 0.5, the loss
written out in torch (`peer_training_curve.py`). Writes an .npz with the
per-step losses and mean logits and the final weights in the same layout.

    /tmp/torch/bin/python tools/torch_peer/peer_replay.py IN.npz OUT.npz \\
        --loss nsgan --g-lr 2e-4 --d-lr 2e-4
"""
import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_training_curve as curve  # pylint: disable=g-import-not-at-top

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)
_BN_FIELDS = ('weight', 'bias', 'running_mean', 'running_var')


def _layers(net, prefix):
  """(name, module) of the net's convolutions and batch norms, in order."""
  convs = [m for m in net.modules() if isinstance(m, _CONVS)]
  bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
  return ([(f'{prefix}_conv_{i}', m) for i, m in enumerate(convs)],
          [(f'{prefix}_bn_{i}', m) for i, m in enumerate(bns)])


def load_weights(net, prefix, arrays):
  convs, bns = _layers(net, prefix)
  with torch.no_grad():
    for name, m in convs:
      w = torch.from_numpy(arrays[name])
      if w.shape != m.weight.shape:
        sys.exit(f'{name}: shape {tuple(w.shape)}, the peer has '
                 f'{tuple(m.weight.shape)}')
      m.weight.copy_(w)  # copy_ casts to the module's dtype.
    for name, m in bns:
      for field in _BN_FIELDS:
        getattr(m, field).copy_(torch.from_numpy(arrays[f'{name}_{field}']))


def dump_weights(net, prefix):
  convs, bns = _layers(net, prefix)
  out = {name: m.weight.detach().numpy() for name, m in convs}
  for name, m in bns:
    out.update({f'{name}_{f}': getattr(m, f).detach().numpy()
                for f in _BN_FIELDS})
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('inputs')
  p.add_argument('outputs')
  p.add_argument('--loss', choices=curve.LOSSES, default='nsgan')
  p.add_argument('--g-lr', type=float, default=2e-4)
  p.add_argument('--d-lr', type=float, default=2e-4)
  p.add_argument('--dtype', choices=('float32', 'float64'), default='float32',
                 help='float64 gives the reference both float32 runs are '
                 'measured against')
  p.add_argument('--peer-script', default=curve.DEFAULT_PEER_SCRIPT)
  a = p.parse_args()
  dtype = getattr(torch, a.dtype)
  arrays = dict(np.load(a.inputs))
  peer = curve.load_peer(a.peer_script)
  g, d = peer.generator().to(dtype), peer.discriminator().to(dtype)
  load_weights(g, 'g', arrays)
  load_weights(d, 'd', arrays)
  opt_g = torch.optim.Adam(g.parameters(), lr=a.g_lr, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(d.parameters(), lr=a.d_lr, betas=(0.5, 0.999))
  num_steps = len([k for k in arrays if k.startswith('z_')])
  logs = {k: [] for k in ('d_loss', 'g_loss', 'd_real_logit',
                          'd_fake_logit')}
  for t in range(num_steps):
    z = torch.from_numpy(arrays[f'z_{t}'])[:, :, None, None].to(dtype)
    real = torch.from_numpy(arrays[f'real_{t}']).permute(0, 3, 1, 2)
    real = real.to(dtype) / 127.5 - 1.0
    loss_d, loss_g, real_logits, fake_logits = curve.train_iteration(
        g, d, opt_g, opt_d, a.loss, real, z)
    for k, v in zip(logs, (loss_d, loss_g, real_logits.mean(),
                           fake_logits.mean())):
      logs[k].append(float(v))
  out = {k: np.asarray(v, np.float64) for k, v in logs.items()}
  out.update(dump_weights(g, 'g'))
  out.update(dump_weights(d, 'd'))
  np.savez(a.outputs, **out)


if __name__ == '__main__':
  main()
