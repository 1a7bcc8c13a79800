#!/usr/bin/env python3
"""Replays catgan_jax train steps with the PyTorch peer (the torch side of
`peer_equivalence.py` and `make_parity_fixture.py`, which run this; it is
not meant to be run by hand).

Reads an .npz written by `peer_equivalence.py`: the initial weights of G and
D in torch layout, in module order (`g_conv_i`, `g_bn_i_{weight, bias,
running_mean, running_var}`, the same for `d_`, and `d_sn_i_u`, torch's
`weight_u`, of each spectrally normalised D convolution), and for every
iteration t the latents `z_t` [B, nz] and the uint8 real batch `real_t`
[B, 64, 64, 3]; with the fresh-sample recipes also the G step's latents
`z_g_t` and reals `real_g_t`, and for WGAN-GP the interpolation weights
`gp_u_t` [B, 1, 1, 1]. The widths (nz, ngf, ndf) are read off the weights.
Builds the peer's networks (`peer_torch_dcgan.py`) in `--dtype`, loads the
weights, and runs the iterations of `--recipe`:

  dcgan: one D update on the real and the fake batch, then one G update
    through D(fake), Adam with the given rates and beta1 0.5, the loss
    written out in torch (`peer_training_curve.py`).
  wgan, wgan_gp, losses_iter: the loops of WGAN.py, WGAN-GP.py and
    GAN_losses_iter.py (`peer_reference_loops.py`).

Writes an .npz with the per-iteration logs (`log_<name>`, NaN where an
iteration has none, e.g. `log_g_loss` between generator updates) and the
final weights in the same layout.

    /tmp/torch/bin/python tools/torch_peer/peer_replay.py IN.npz OUT.npz \\
        --recipe dcgan --loss nsgan --g-lr 2e-4 --d-lr 2e-4 \\
        --peer-script /path/to/peer_torch_dcgan.py
"""
import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_reference_loops as loops  # pylint: disable=g-import-not-at-top
import peer_training_curve as curve  # pylint: disable=g-import-not-at-top

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)
_BN_FIELDS = ('weight', 'bias', 'running_mean', 'running_var')
RECIPES = ('dcgan', 'wgan', 'wgan_gp', 'losses_iter')
LOG_KEYS = (
    'd_loss',
    'g_loss',
    'd_real_logit',
    'd_fake_logit',
    'd_grad_norm',
    'g_grad_norm',
    'gp',
)


def _layers(net, prefix):
  """(name, module) of the net's convolutions and batch norms, in order."""
  convs = [m for m in net.modules() if isinstance(m, _CONVS)]
  bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
  return (
      [(f'{prefix}_conv_{i}', m) for i, m in enumerate(convs)],
      [(f'{prefix}_bn_{i}', m) for i, m in enumerate(bns)],
  )


def _weight(m):
  # spectral_norm makes the raw weight the parameter `weight_orig`.
  return m.weight_orig if hasattr(m, 'weight_orig') else m.weight


def _sn_name(conv_name):
  return conv_name.replace('_conv_', '_sn_') + '_u'


def load_weights(net, prefix, arrays):
  convs, bns = _layers(net, prefix)
  with torch.no_grad():
    for name, m in convs:
      w = torch.from_numpy(arrays[name])
      if w.shape != _weight(m).shape:
        sys.exit(
            f'{name}: shape {tuple(w.shape)}, the peer has '
            f'{tuple(_weight(m).shape)}'
        )
      _weight(m).copy_(w)  # copy_ casts to the module's dtype.
      if hasattr(m, 'weight_u'):
        m.weight_u.copy_(torch.from_numpy(arrays[_sn_name(name)]))
    for name, m in bns:
      for field in _BN_FIELDS:
        getattr(m, field).copy_(torch.from_numpy(arrays[f'{name}_{field}']))


def dump_weights(net, prefix):
  convs, bns = _layers(net, prefix)
  out = {name: _weight(m).detach().numpy().copy() for name, m in convs}
  out.update(
      {
          _sn_name(name): m.weight_u.detach().numpy().copy()
          for name, m in convs
          if hasattr(m, 'weight_u')
      }
  )
  for name, m in bns:
    out.update(
        {f'{name}_{f}': getattr(m, f).detach().numpy() for f in _BN_FIELDS}
    )
  return out


def _last_d_conv(d):
  return _weight(_layers(d, 'd')[0][-1][1])


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('inputs')
  p.add_argument('outputs')
  p.add_argument('--recipe', choices=RECIPES, default='dcgan')
  p.add_argument(
      '--loss',
      default='nsgan',
      help='dcgan: one of peer_training_curve.LOSSES; '
      'losses_iter: hinge, rsgan, rasgan, ralsgan or rahinge',
  )
  p.add_argument('--g-lr', type=float, default=2e-4)
  p.add_argument('--d-lr', type=float, default=2e-4)
  p.add_argument('--b1', type=float, default=0.5, help="Adam's betas")
  p.add_argument('--b2', type=float, default=0.999)
  p.add_argument('--clip', type=float, default=0.01, help='wgan: the clamp')
  p.add_argument(
      '--n-critic',
      type=int,
      default=1,
      help='critic iterations per G update (wgan, wgan_gp)',
  )
  p.add_argument(
      '--warm-critic',
      type=int,
      nargs=3,
      default=(0, 0, 0),
      metavar=('N', 'FIRST', 'EVERY'),
      help="wgan: WGAN.py's N_critic = N before G updates < FIRST "
      'and every EVERY-th (100 25 500 there); 0 0 0 = off',
  )
  p.add_argument(
      '--gp-weight',
      type=float,
      default=10.0,
      help="wgan_gp: WGAN-GP.py's --penalty",
  )
  p.add_argument(
      '--spectral',
      action='store_true',
      help="losses_iter: GAN_losses_iter.py's --spectral (SN on "
      'every D convolution, no BatchNorm in D)',
  )
  p.add_argument(
      '--sn-g-step-u',
      choices=('keep', 'drop'),
      default='keep',
      help="keep (torch, the reference): the G step's D passes "
      'advance the power iteration; drop: they do not (a '
      'diagnostic that isolates this from the rest of the step)',
  )
  p.add_argument(
      '--dtype',
      choices=('float32', 'float64'),
      default='float32',
      help='float64 gives the reference both float32 runs are '
      'measured against',
  )
  p.add_argument(
      '--peer-script',
      required=True,
      help='peer_torch_dcgan.py, the PyTorch reference DCGAN-64',
  )
  return p.parse_args(argv)


def main(argv=None):
  a = parse_args(argv)
  dtype = getattr(torch, a.dtype)
  arrays = dict(np.load(a.inputs))
  peer = curve.load_peer(a.peer_script)
  nz, ngf8 = arrays['g_conv_0'].shape[:2]
  ndf = arrays['d_conv_0'].shape[0]
  g = peer.generator(nz=nz, ngf=ngf8 // 8).to(dtype)
  if a.recipe == 'dcgan':
    d = peer.discriminator(ndf=ndf)
  else:
    d = loops.reference_discriminator(
        peer,
        ndf,
        spectral=a.spectral,
        batch_norm=a.recipe == 'wgan'
        or (a.recipe == 'losses_iter' and not a.spectral),
    )
  d = d.to(dtype)
  load_weights(g, 'g', arrays)
  load_weights(d, 'd', arrays)
  num_steps = len(
      [k for k in arrays if k.startswith('z_') and not k.startswith('z_g_')]
  )
  logs = {k: np.full(num_steps, np.nan) for k in LOG_KEYS}

  def tensor(name, t, images=False):
    x = torch.from_numpy(arrays[f'{name}_{t}'])
    if images:  # uint8 NHWC -> [-1, 1] NCHW, as catgan_jax's step scales.
      return x.permute(0, 3, 1, 2).to(dtype) / 127.5 - 1.0
    x = x.to(dtype)
    return x[:, :, None, None] if name.startswith('z') else x

  def record(t, values):
    for k, v in values.items():
      logs[k][t] = v

  if a.recipe == 'dcgan':
    opt_g = torch.optim.Adam(g.parameters(), lr=a.g_lr, betas=(a.b1, a.b2))
    opt_d = torch.optim.Adam(d.parameters(), lr=a.d_lr, betas=(a.b1, a.b2))
    for t in range(num_steps):
      loss_d, loss_g, real_logits, fake_logits = curve.train_iteration(
          g, d, opt_g, opt_d, a.loss, tensor('real', t, True), tensor('z', t)
      )
      record(
          t,
          {
              'd_loss': loss_d,
              'g_loss': loss_g,
              'd_real_logit': float(real_logits.mean()),
              'd_fake_logit': float(fake_logits.mean()),
          },
      )
  else:
    if a.recipe == 'wgan':
      with torch.no_grad():  # See peer_reference_loops: the sign convention.
        _last_d_conv(d).neg_()
      opt_g = torch.optim.RMSprop(g.parameters(), lr=a.g_lr)
      opt_d = torch.optim.RMSprop(d.parameters(), lr=a.d_lr)
    else:
      opt_g = torch.optim.Adam(g.parameters(), lr=a.g_lr, betas=(a.b1, a.b2))
      opt_d = torch.optim.Adam(d.parameters(), lr=a.d_lr, betas=(a.b1, a.b2))
    group_size = loops.wgan_group_size(a.n_critic, *a.warm_critic)

    def d_step(t):
      log = {}
      real, z = tensor('real', t, True), tensor('z', t)
      if a.recipe == 'wgan':
        loops.wgan_d_step(g, d, opt_d, a.clip, real, z, log)
      elif a.recipe == 'wgan_gp':
        loops.wgan_gp_d_step(
            g, d, opt_d, a.gp_weight, real, z, tensor('gp_u', t), log
        )
      else:
        loops.losses_iter_d_step(
            g, d, opt_d, loops.LOSSES_ITER[a.loss], real, z, log
        )
      record(t, log)

    def g_step(t):
      log = {}
      z = tensor('z_g', t)
      sn_u = [m.weight_u.clone() for m in d.modules() if hasattr(m, 'weight_u')]
      if a.recipe == 'wgan':
        loops.wgan_g_step(g, d, opt_g, z, log)
      elif a.recipe == 'wgan_gp':
        loops.wgan_gp_g_step(g, d, opt_g, z, log)
      else:
        # Without a fresh real batch (train.g_samples='fresh_z'), D's.
        real_g = tensor(
            'real_g' if f'real_g_{t}' in arrays else 'real', t, True
        )
        loops.losses_iter_g_step(
            g, d, opt_g, loops.LOSSES_ITER[a.loss], real_g, z, log
        )
      if a.sn_g_step_u == 'drop':
        with torch.no_grad():
          for m, u in zip(
              [m for m in d.modules() if hasattr(m, 'weight_u')], sn_u
          ):
            m.weight_u.copy_(u)
      record(t, log)

    loops.critic_groups(num_steps, group_size, d_step, g_step)
    if a.recipe == 'wgan':
      with torch.no_grad():
        _last_d_conv(d).neg_()
  out = {f'log_{k}': v for k, v in logs.items()}
  out.update(dump_weights(g, 'g'))
  out.update(dump_weights(d, 'd'))
  np.savez(a.outputs, **out)


if __name__ == '__main__':
  main()
