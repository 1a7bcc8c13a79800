#!/usr/bin/env python3
"""PyTorch peer: one R3GAN training iteration (D phase, G phase, G_ema).

    /tmp/torch/bin/python tools/torch_peer/peer_r3gan.py --batch 32 \\
        --widths 96,96,96,96,48 --iters 3 --warmup 1

The networks are the reference's ``R3GAN/Networks.py``
(github.com/brownvc/R3GAN) in plain torch, layer for layer: the
``Convolution`` wrapper (bias-free, MSR init), the inverted-bottleneck
``ResidualBlock`` (1x1 conv, biased LeakyReLU, grouped 3x3 conv with
`--group-channels` channels per group, biased LeakyReLU, zero-initialised
1x1 conv), ``GenerativeBasis``, ``DiscriminativeBasis`` (a depthwise 4x4
conv), the transition layers, ``Generator`` and ``Discriminator``. The
resamplers and the biased activation are the reference's plain-torch
versions (``InterpolativeUpsamplerReference`` / ``...DownsamplerReference``,
``BiasedActivationReference``), since its CUDA kernels do not run on a CPU.
The iteration is ``training/training_loop.py``'s: a D phase (its own z and
real batch; ``R3GAN/Trainer.py``'s RpGAN loss softplus(-(D(x) - D(G(z))))
plus gamma / 2 (R1 + R2), both by ``torch.autograd.grad(...,
create_graph=True)``), a G phase (a fresh z and a fresh real batch; loss
softplus(-(D(G(z)) - D(x)))), each followed by its Adam step (beta1 0), and
the G_ema update. Widths are the generator's from 4x4 up, as catgan_jax's
``model.r3gan_widths`` after scaling; D gets them reversed, as the
reference's ``train.py`` passes them.

Left out, as in catgan_jax's benchmark: class conditioning, the augmentation
pipe and the schedules (a constant lr, beta2 and gamma cost the same).
Prints one JSON line: images/s (real images of the D phase per second),
s/iter, FLOPs per iteration (torch's FlopCounterMode) and the parameter
counts of both networks.
"""

import argparse
import copy
import json
import math
import time

import numpy
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode  # pylint: disable=protected-access
from torch.utils.flop_counter import flop_registry

LEAK = 0.2


def msr_initializer(layer, activation_gain=1.0):
  """The reference's MSRInitializer."""
  fan_in = layer.weight.data.size(1) * layer.weight.data[0][0].numel()
  layer.weight.data.normal_(0, activation_gain / math.sqrt(fan_in))
  if layer.bias is not None:
    layer.bias.data.zero_()
  return layer


class BiasedActivation(nn.Module):
  """The reference's BiasedActivationReference."""

  gain = math.sqrt(2 / (1 + LEAK**2))

  def __init__(self, units):
    super().__init__()
    self.bias = nn.Parameter(torch.zeros(units))

  def forward(self, x):
    shape = (1, -1, 1, 1) if x.dim() > 2 else (1, -1)
    return nn.functional.leaky_relu(
        x + self.bias.to(x.dtype).view(*shape), LEAK
    )


class Convolution(nn.Module):

  def __init__(self, cin, cout, kernel_size, groups=1, activation_gain=1.0):
    super().__init__()
    self.layer = msr_initializer(
        nn.Conv2d(
            cin,
            cout,
            kernel_size,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=False,
        ),
        activation_gain,
    )

  def forward(self, x):
    return nn.functional.conv2d(
        x,
        self.layer.weight.to(x.dtype),
        padding=self.layer.padding,
        groups=self.layer.groups,
    )


class ResidualBlock(nn.Module):

  def __init__(self, channels, cardinality, expansion, kernel_size, num_blocks):
    super().__init__()
    hidden = channels * expansion
    gain = BiasedActivation.gain * num_blocks ** (-1 / (2 * 3 - 2))
    self.linear1 = Convolution(channels, hidden, 1, activation_gain=gain)
    self.linear2 = Convolution(
        hidden, hidden, kernel_size, cardinality, activation_gain=gain
    )
    self.linear3 = Convolution(hidden, channels, 1, activation_gain=0)
    self.act1 = BiasedActivation(hidden)
    self.act2 = BiasedActivation(hidden)

  def forward(self, x):
    y = self.linear2(self.act1(self.linear1(x)))
    return x + self.linear3(self.act2(y))


def lowpass_kernel(weights=(1, 2, 1)):
  """CreateLowpassKernel(Inplace=False): [1, 2, 1] * [1, 1], outer, sum 1."""
  k = numpy.convolve(weights, [1, 1]).reshape(1, -1)
  k = torch.tensor(k.T @ k, dtype=torch.float32)
  return k / k.sum()


class Upsampler(nn.Module):
  """InterpolativeUpsamplerReference."""

  def __init__(self):
    super().__init__()
    self.register_buffer('kernel', lowpass_kernel())

  def forward(self, x):
    k = 4 * self.kernel.view(1, 1, 4, 4).to(x.dtype)
    b, c, h, w = x.shape
    y = nn.functional.conv_transpose2d(
        x.reshape(b * c, 1, h, w), k, stride=2, padding=1
    )
    return y.view(b, c, y.shape[2], y.shape[3])


class Downsampler(nn.Module):
  """InterpolativeDownsamplerReference."""

  def __init__(self):
    super().__init__()
    self.register_buffer('kernel', lowpass_kernel())

  def forward(self, x):
    k = self.kernel.view(1, 1, 4, 4).to(x.dtype)
    b, c, h, w = x.shape
    y = nn.functional.conv2d(x.reshape(b * c, 1, h, w), k, stride=2, padding=1)
    return y.view(b, c, y.shape[2], y.shape[3])


class UpsampleLayer(nn.Module):

  def __init__(self, cin, cout):
    super().__init__()
    self.resampler = Upsampler()
    self.linear = Convolution(cin, cout, 1) if cin != cout else None

  def forward(self, x):
    x = self.linear(x) if self.linear is not None else x
    return self.resampler(x)


class DownsampleLayer(nn.Module):

  def __init__(self, cin, cout):
    super().__init__()
    self.resampler = Downsampler()
    self.linear = Convolution(cin, cout, 1) if cin != cout else None

  def forward(self, x):
    x = self.resampler(x)
    return self.linear(x) if self.linear is not None else x


class GenerativeBasis(nn.Module):

  def __init__(self, z_dim, channels):
    super().__init__()
    self.basis = nn.Parameter(torch.empty(channels, 4, 4).normal_(0, 1))
    self.linear = msr_initializer(nn.Linear(z_dim, channels, bias=False))

  def forward(self, z):
    scale = self.linear(z).view(z.shape[0], -1, 1, 1)
    return self.basis.view(1, -1, 4, 4) * scale


class DiscriminativeBasis(nn.Module):

  def __init__(self, channels, out_dim):
    super().__init__()
    self.basis = msr_initializer(
        nn.Conv2d(channels, channels, 4, groups=channels, bias=False)
    )
    self.linear = msr_initializer(nn.Linear(channels, out_dim, bias=False))

  def forward(self, x):
    return self.linear(self.basis(x).view(x.shape[0], -1))


class Stage(nn.Module):
  """GeneratorStage (transition first) or DiscriminatorStage (last)."""

  def __init__(self, transition, blocks, transition_first, dtype):
    super().__init__()
    layers = (
        [transition] + blocks if transition_first else blocks + [transition]
    )
    self.layers = nn.ModuleList(layers)
    self.dtype = dtype

  def forward(self, x):
    x = x.to(self.dtype)
    for layer in self.layers:
      x = layer(x)
    return x


def _blocks(width, cardinality, n, expansion, num_blocks):
  return [
      ResidualBlock(width, cardinality, expansion, 3, num_blocks)
      for _ in range(n)
  ]


class Generator(nn.Module):

  def __init__(self, z_dim, widths, cardinalities, blocks, expansion, dtype):
    super().__init__()
    num_blocks = blocks * len(widths)
    stages = [
        Stage(
            GenerativeBasis(z_dim, widths[0]),
            _blocks(widths[0], cardinalities[0], blocks, expansion, num_blocks),
            True,
            dtype,
        )
    ]
    for i in range(len(widths) - 1):
      stages.append(
          Stage(
              UpsampleLayer(widths[i], widths[i + 1]),
              _blocks(
                  widths[i + 1],
                  cardinalities[i + 1],
                  blocks,
                  expansion,
                  num_blocks,
              ),
              True,
              dtype,
          )
      )
    self.stages = nn.ModuleList(stages)
    self.aggregation = Convolution(widths[-1], 3, 1)

  def forward(self, z):
    x = z
    for stage in self.stages:
      x = stage(x)
    return self.aggregation(x).float()


class Discriminator(nn.Module):

  def __init__(self, widths, cardinalities, blocks, expansion, dtype):
    super().__init__()
    num_blocks = blocks * len(widths)
    stages = []
    for i in range(len(widths) - 1):
      stages.append(
          Stage(
              DownsampleLayer(widths[i], widths[i + 1]),
              _blocks(
                  widths[i], cardinalities[i], blocks, expansion, num_blocks
              ),
              False,
              dtype,
          )
      )
    stages.append(
        Stage(
            DiscriminativeBasis(widths[-1], 1),
            _blocks(
                widths[-1], cardinalities[-1], blocks, expansion, num_blocks
            ),
            False,
            dtype,
        )
    )
    self.extraction = Convolution(3, widths[0], 1)
    self.stages = nn.ModuleList(stages)

  def forward(self, x):
    x = self.extraction(x.to(self.stages[0].dtype))
    for stage in self.stages:
      x = stage(x)
    return x.view(x.shape[0]).float()


def zero_centered_gradient_penalty(samples, critics):
  """R3GAN/Trainer.py: the squared norm of d(critics)/d(samples), per image."""
  (gradient,) = torch.autograd.grad(
      outputs=critics.sum(), inputs=samples, create_graph=True
  )
  return gradient.square().sum([1, 2, 3])


def make_iteration(g, d, g_ema, opt_g, opt_d, reals, z_dim, gamma, ema_beta):
  """One training_loop.py iteration: D phase, G phase, G_ema."""
  batch = reals[0].shape[0]
  device = reals[0].device

  def iteration():
    # D phase (AccumulateDiscriminatorGradients).
    opt_d.zero_grad(set_to_none=True)
    d.requires_grad_(True)
    z = torch.randn(batch, z_dim, device=device)
    real = reals[0].detach().requires_grad_(True)
    with torch.no_grad():
      fake = g(z)
    fake = fake.detach().requires_grad_(True)
    real_logits, fake_logits = d(real), d(fake)
    r1 = zero_centered_gradient_penalty(real, real_logits)
    r2 = zero_centered_gradient_penalty(fake, fake_logits)
    loss_d = nn.functional.softplus(-(real_logits - fake_logits)) + (
        gamma / 2
    ) * (r1 + r2)
    loss_d.mean().backward()
    d.requires_grad_(False)
    opt_d.step()
    # G phase (AccumulateGeneratorGradients): a fresh z and real batch.
    opt_g.zero_grad(set_to_none=True)
    g.requires_grad_(True)
    fake = g(torch.randn(batch, z_dim, device=device))
    fake_logits, real_logits = d(fake), d(reals[1].detach())
    loss_g = nn.functional.softplus(-(fake_logits - real_logits))
    loss_g.mean().backward()
    g.requires_grad_(False)
    opt_g.step()
    with torch.no_grad():
      for p_ema, p in zip(g_ema.parameters(), g.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
    return loss_d.detach().mean(), loss_g.detach().mean()

  return iteration


class _FlopCount(TorchDispatchMode):
  """FlopCounterMode's count without its module hooks.

  FlopCounterMode's module tracker refuses ``autograd.grad`` on leaf
  tensors (the R1 / R2 penalties'); the per-op FLOP formulas are the same.
  """

  def __init__(self):
    super().__init__()
    self.flops = 0

  def __torch_dispatch__(self, func, types, args=(), kwargs=None):
    kwargs = kwargs or {}
    out = func(*args, **kwargs)
    formula = flop_registry.get(func._overloadpacket)  # pylint: disable=protected-access
    if formula is not None:
      self.flops += formula(*args, **kwargs, out_val=out)
    return out


def count_flops(fn) -> int:
  """FLOPs of one call of `fn`, as torch's FlopCounterMode counts them."""
  with _FlopCount() as counter:
    fn()
  return counter.flops


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--iters', type=int, default=3)
  p.add_argument('--warmup', type=int, default=1)
  p.add_argument('--device', default='cpu')
  p.add_argument('--threads', type=int, default=0)
  p.add_argument(
      '--widths',
      default='96,96,96,96,48',
      help="G's channels per stage from 4x4 up",
  )
  p.add_argument('--group-channels', type=int, default=16)
  p.add_argument('--blocks', type=int, default=2)
  p.add_argument('--expansion', type=int, default=2)
  p.add_argument('--z-dim', type=int, default=64)
  p.add_argument('--gamma', type=float, default=2.0)
  p.add_argument(
      '--dtype',
      default='float32',
      choices=['float32', 'bfloat16'],
      help='compute dtype of every stage (the reference runs some in bf16)',
  )
  a = p.parse_args()
  if a.threads:
    torch.set_num_threads(a.threads)
  torch.manual_seed(0)
  dev = torch.device(a.device)
  dtype = getattr(torch, a.dtype)
  widths = [int(w) for w in a.widths.split(',')]
  cards = [w * a.expansion // a.group_channels for w in widths]
  g = Generator(a.z_dim, widths, cards, a.blocks, a.expansion, dtype).to(dev)
  d = Discriminator(widths[::-1], cards[::-1], a.blocks, a.expansion, dtype).to(
      dev
  )
  g.requires_grad_(False)
  d.requires_grad_(False)
  g_ema = copy.deepcopy(g).eval()
  adam = lambda net: torch.optim.Adam(
      net.parameters(), lr=2e-4, betas=(0.0, 0.9), eps=1e-8
  )
  opt_g, opt_d = adam(g), adam(d)
  size = 4 * 2 ** (len(widths) - 1)
  reals = [
      torch.rand(a.batch, 3, size, size, device=dev) * 2 - 1 for _ in range(2)
  ]
  iteration = make_iteration(
      g, d, g_ema, opt_g, opt_d, reals, a.z_dim, a.gamma, 0.999
  )
  flops = count_flops(iteration)
  for _ in range(a.warmup):
    iteration()
  sync = torch.cuda.synchronize if dev.type == 'cuda' else lambda: None
  sync()
  t0 = time.perf_counter()
  for _ in range(a.iters):
    loss_d, loss_g = iteration()
  finite = bool(torch.isfinite(loss_d) and torch.isfinite(loss_g))
  sync()
  dt = (time.perf_counter() - t0) / a.iters
  count = lambda net: sum(p.numel() for p in net.parameters())
  print(
      json.dumps(
          {
              'system': 'pytorch-r3gan',
              'torch': torch.__version__,
              'device': a.device,
              'dtype': a.dtype,
              'threads': torch.get_num_threads(),
              'batch': a.batch,
              'widths': widths,
              's_per_iter': round(dt, 5),
              'images_per_s': round(a.batch / dt, 2),
              'flops_per_iter': flops,
              'params_g': count(g),
              'params_d': count(d),
              'finite': finite,
          }
      )
  )


if __name__ == '__main__':
  main()
