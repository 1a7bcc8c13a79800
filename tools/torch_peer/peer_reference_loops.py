"""The training loops of the WGAN, WGAN-GP and relativistic-GAN reference code,
in torch, for `peer_replay.py` (not meant to be run by hand).

Each function below transcribes one reference script's iteration, with its
random draws (z, the real batches, WGAN-GP's interpolation weights) read
from the replay's inputs instead of drawn:

  `wgan_*`: Deep-learning-with-cats `Generating cats/WGAN.py` (after
    Arjovsky's WassersteinGAN code). RMSprop (torch's defaults: alpha 0.99,
    eps 1e-8) for both networks; every critic parameter clamped to +-clip at
    the start of each critic iteration; N_critic critic iterations per
    generator update, 100 instead of 5 when gen_iterations < 25 or
    gen_iterations % 500 == 0 (here the numbers are arguments); the critic's
    output is the batch mean, minimised on the reals and maximised on the
    fakes (`errD_real.backward(one)`, `errD_fake.backward(one_neg)`), and G
    minimises it on its own fresh fakes.
  `wgan_gp_*`: Deep-learning-with-cats `Generating cats/WGAN-GP.py`. No
    normalisation in the critic; Adam; -E D(real) + E D(fake) + penalty *
    E (||grad D(x_both)|| - 1)^2 at x_both = real * u + fake * (1 - u), u
    per sample, the norm over channels, rows and columns; n_critic critic
    iterations, then G on a fresh z.
  `losses_iter_*`: RelativisticGAN `code/GAN_losses_iter.py` (arch 0,
    Diters = Giters = 1). `--spectral`: torch.nn.utils.spectral_norm on every
    D convolution and no BatchNorm in D; D(x) first, then G(z) and
    D(fake.detach()); the G step draws a fresh z and, for the relativistic
    losses (loss_D 5-8), a fresh real batch. Every D forward pass in train
    mode, the G step's included, runs one power iteration of each spectral
    norm and keeps its u (torch's forward pre-hook).

Sign convention: WGAN.py's critic is catgan_jax's negated (it is minimised
on the reals). Its last convolution is linear and its clamp symmetric, so
running it from catgan_jax's weights with the last layer negated gives the
negated critic, and RMSprop's steps negated there, exactly; `peer_replay.py`
negates that layer on the way in and out.
"""

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F


def reference_discriminator(
    peer, ndf: int, batch_norm: bool, spectral: bool
) -> nn.Sequential:
  """The peer's DCGAN-64 discriminator, as the reference scripts vary it.

  Args:
    peer: the `peer_torch_dcgan.py` module.
    ndf: base width.
    batch_norm: keep the BatchNorm layers (WGAN.py does; WGAN-GP.py and
      GAN_losses_iter.py with --spectral drop them).
    spectral: wrap every convolution in torch.nn.utils.spectral_norm (one
      power iteration, eps 1e-12: GAN_losses_iter.py's --spectral).
  """
  layers = []
  for m in peer.discriminator(ndf=ndf):
    if isinstance(m, nn.BatchNorm2d) and not batch_norm:
      continue
    if isinstance(m, nn.Conv2d) and spectral:
      m = nn.utils.spectral_norm(m)
    layers.append(m)
  return nn.Sequential(*layers)


def grad_norm(net: nn.Module) -> float:
  """Global L2 norm of the net's gradients (catgan_jax's *_grad_norm)."""
  return float(
      torch.sqrt(
          sum(
              (p.grad.double() ** 2).sum()
              for p in net.parameters()
              if p.grad is not None
          )
      )
  )


def critic_groups(
    num_steps: int,
    group_size: Callable[[int], int],
    d_step: Callable[[int], None],
    g_step: Callable[[int], None],
) -> None:
  """The references' outer loop: groups of critic iterations, each followed
  by one generator update.

  Group `gen_iterations` has group_size(gen_iterations) critic iterations
  (`d_step(i)` for the i-th iteration overall), then `g_step(i)` with the
  group's last i. A group cut short by the end of the run has no G update
  (catgan_jax updates G at the end of a group; WGAN.py, which ends groups at
  epoch ends, would still update it).
  """
  i, gen_iterations = 0, 0
  while i < num_steps:
    t, n_critic = 0, group_size(gen_iterations)
    while t < n_critic and i < num_steps:
      d_step(i)
      t, i = t + 1, i + 1
    if t < n_critic:
      return
    g_step(i - 1)
    gen_iterations += 1


def wgan_group_size(
    n_critic: int, warm: int, first: int, every: int
) -> Callable[[int], int]:
  """WGAN.py's `N_critic`: `warm` when gen_iterations < first or
  gen_iterations % every == 0 (100, 25, 500 there), else n_critic."""

  def size(gen_iterations):
    if warm and (
        gen_iterations < first or (every and gen_iterations % every == 0)
    ):
      return warm
    return n_critic

  return size


def set_requires_grad(net: nn.Module, flag: bool) -> None:
  for p in net.parameters():
    p.requires_grad = flag


def wgan_d_step(g, d, opt_d, clip, real, z, log):
  """One critic iteration of WGAN.py."""
  set_requires_grad(d, True)
  d.zero_grad()
  for p in d.parameters():
    p.data.clamp_(-clip, clip)
  errD_real = d(real).mean()
  errD_real.backward(torch.ones_like(errD_real))
  with torch.no_grad():  # Variable(z, volatile=True), then .data.
    x_fake = g(z)
  errD_fake = d(x_fake).mean()
  errD_fake.backward(-torch.ones_like(errD_fake))
  log['d_grad_norm'] = grad_norm(d)
  opt_d.step()
  log['d_loss'] = float(errD_real - errD_fake)


def wgan_g_step(g, d, opt_g, z, log):
  """The generator update of WGAN.py (a fresh z, D's output minimised)."""
  set_requires_grad(d, False)
  g.zero_grad()
  errG = d(g(z)).mean()
  errG.backward(torch.ones_like(errG))
  log['g_grad_norm'] = grad_norm(g)
  opt_g.step()
  log['g_loss'] = float(errG)


def wgan_gp_d_step(g, d, opt_d, penalty, real, z, u, log):
  """One critic iteration of WGAN-GP.py."""
  set_requires_grad(d, True)
  d.zero_grad()
  errD_real = d(real).mean()
  errD_real.backward(-torch.ones_like(errD_real))
  with torch.no_grad():
    x_fake = g(z)
  errD_fake = d(x_fake).mean()
  errD_fake.backward(torch.ones_like(errD_fake))
  x_both = (real * u + x_fake * (1 - u)).detach().requires_grad_(True)
  out = d(x_both).view(-1)
  grad = torch.autograd.grad(
      outputs=out,
      inputs=x_both,
      grad_outputs=torch.ones_like(out),
      retain_graph=True,
      create_graph=True,
      only_inputs=True,
  )[0]
  gp = ((grad.norm(2, 1).norm(2, 1).norm(2, 1) - 1) ** 2).mean()
  grad_penalty = penalty * gp
  grad_penalty.backward()
  log['d_grad_norm'] = grad_norm(d)
  opt_d.step()
  log['d_loss'] = float(errD_fake - errD_real + grad_penalty)
  log['gp'] = float(gp)


def wgan_gp_g_step(g, d, opt_g, z, log):
  """The generator update of WGAN-GP.py (a fresh z, -E D(G(z)))."""
  set_requires_grad(d, False)
  g.zero_grad()
  errG = d(g(z)).mean()
  errG.backward(-torch.ones_like(errG))
  log['g_grad_norm'] = grad_norm(g)
  opt_g.step()
  log['g_loss'] = float(-errG)


def _bce(logits, target):
  return F.binary_cross_entropy_with_logits(
      logits, torch.full_like(logits, target)
  )


# GAN_losses_iter.py's loss_D numbers of the losses replayed here.
LOSSES_ITER = {'hinge': 4, 'rsgan': 5, 'rasgan': 6, 'ralsgan': 7, 'rahinge': 8}


def losses_iter_d_step(g, d, opt_d, loss_d, real, z, log):
  """One D update of GAN_losses_iter.py (loss_D 4-8)."""
  set_requires_grad(d, True)
  d.zero_grad()
  y_pred = d(real).view(-1)
  if loss_d == 4:
    errD_real = torch.mean(F.relu(1.0 - y_pred))
    errD_real.backward()
    fake = g(z)
    y_pred_fake = d(fake.detach()).view(-1)
    errD_fake = torch.mean(F.relu(1.0 + y_pred_fake))
    errD_fake.backward()
    errD = errD_real + errD_fake
  else:
    fake = g(z)
    y_pred_fake = d(fake.detach()).view(-1)
    if loss_d == 5:
      errD = _bce(y_pred - y_pred_fake, 1.0)
    elif loss_d == 6:
      errD = (
          _bce(y_pred - torch.mean(y_pred_fake), 1.0)
          + _bce(y_pred_fake - torch.mean(y_pred), 0.0)
      ) / 2
    elif loss_d == 7:
      errD = (
          torch.mean((y_pred - torch.mean(y_pred_fake) - 1) ** 2)
          + torch.mean((y_pred_fake - torch.mean(y_pred) + 1) ** 2)
      ) / 2
    else:
      errD = (
          torch.mean(F.relu(1.0 - (y_pred - torch.mean(y_pred_fake))))
          + torch.mean(F.relu(1.0 + (y_pred_fake - torch.mean(y_pred))))
      ) / 2
    errD.backward()
  log['d_grad_norm'] = grad_norm(d)
  opt_d.step()
  log['d_loss'] = float(errD)


def losses_iter_g_step(g, d, opt_g, loss_d, real_g, z, log):
  """The G update of GAN_losses_iter.py: a fresh z and, for the relativistic
  losses, the fresh real batch `real_g`."""
  set_requires_grad(d, False)
  g.zero_grad()
  y_pred_fake = d(g(z)).view(-1)
  if loss_d == 4:
    errG = -torch.mean(y_pred_fake)
  else:
    y_pred = d(real_g).view(-1)
    if loss_d == 5:
      errG = _bce(y_pred_fake - y_pred, 1.0)
    elif loss_d == 6:
      errG = (
          _bce(y_pred - torch.mean(y_pred_fake), 0.0)
          + _bce(y_pred_fake - torch.mean(y_pred), 1.0)
      ) / 2
    elif loss_d == 7:
      errG = (
          torch.mean((y_pred - torch.mean(y_pred_fake) + 1) ** 2)
          + torch.mean((y_pred_fake - torch.mean(y_pred) - 1) ** 2)
      ) / 2
    else:
      errG = (
          torch.mean(F.relu(1.0 + (y_pred - torch.mean(y_pred_fake))))
          + torch.mean(F.relu(1.0 - (y_pred_fake - torch.mean(y_pred))))
      ) / 2
  errG.backward()
  log['g_grad_norm'] = grad_norm(g)
  opt_g.step()
  log['g_loss'] = float(errG)
