"""Model FLOPs of a JAX function, counted the way torch's FlopCounterMode does.

XLA's cost analysis is no model FLOP count: on CPU it leaves out the taps
of a convolution that fall on padding, and gradients come out at other
fractions (DCGAN-64's discriminator, MFLOP an image: forward 180 where the
dense count is 208; forward and input gradient 361 where it is 415;
forward and weight gradient 534 where it is 617; jax 0.10.2). The PyTorch
peer counts with FlopCounterMode: 2 FLOPs per multiply-add of every
convolution and matmul, each dense. `dense_flops` counts the same way from
the function's jaxpr, so that both systems' MFU are against one convention.
"""

import math
from typing import Any, Callable

import jax
from jax.extend import core


def _conv_flops(eqn: Any) -> float:
  """2 x outputs x (input features x window taps) of one convolution.

  An input-dilated convolution (lax's input gradient of a strided one) is
  counted at the taps that meet real inputs, 1/prod(lhs_dilation) of its
  window, as the forward convolution it is the gradient of.
  """
  rhs = eqn.invars[1].aval
  out = eqn.outvars[0].aval
  rhs_spec = eqn.params['dimension_numbers'].rhs_spec  # (out, in, spatial...)
  window = math.prod(rhs.shape[d] for d in rhs_spec[2:])
  taps = window / math.prod(eqn.params['lhs_dilation'] or (1,))
  return 2.0 * out.size * rhs.shape[rhs_spec[1]] * taps


def _dot_flops(eqn: Any) -> float:
  """2 x outputs x contracted size of one dot_general."""
  lhs = eqn.invars[0].aval
  (lhs_contract, _), _ = eqn.params['dimension_numbers']
  return (
      2.0
      * eqn.outvars[0].aval.size
      * math.prod(lhs.shape[d] for d in lhs_contract)
  )


def _aligned_sub_jaxpr(eqn: Any) -> core.Jaxpr | None:
  """The called program whose outputs are `eqn`'s outputs (jit, remat...)."""
  for key in ('jaxpr', 'call_jaxpr'):
    sub = eqn.params.get(key)
    if isinstance(sub, core.ClosedJaxpr):
      sub = sub.jaxpr
    if isinstance(sub, core.Jaxpr) and len(sub.outvars) == len(eqn.outvars):
      return sub
  return None


def _eqn_flops(eqn: Any, live_outs: list[bool]) -> float:
  name = eqn.primitive.name
  if name == 'conv_general_dilated':
    return _conv_flops(eqn)
  if name == 'dot_general':
    return _dot_flops(eqn)
  if name == 'cond':
    return max(jaxpr_flops(b.jaxpr, live_outs) for b in eqn.params['branches'])
  if name == 'scan':  # Its outputs feed back as carries: all of it runs.
    return eqn.params['length'] * jaxpr_flops(eqn.params['jaxpr'].jaxpr)
  sub = _aligned_sub_jaxpr(eqn)
  if sub is not None:
    return jaxpr_flops(sub, live_outs)
  return sum(map(jaxpr_flops, core.jaxprs_in_params(eqn.params)))


def jaxpr_flops(
    jaxpr: core.Jaxpr, live_outs: list[bool] | None = None
) -> float:
  """Dense FLOPs of the convolutions and matmuls that `jaxpr` needs.

  Only what the (live) outputs depend on counts, as XLA removes the rest:
  a traced gradient holds dead code, e.g. the forward pass of a custom VJP
  next to its primal, or a weight gradient that nobody asked for. Nested
  programs count where they run: a scan's body `length` times, the
  costliest branch of a cond, a while loop's body once.

  Args:
    jaxpr: the program.
    live_outs: which of its outputs are used (default: all).

  Returns:
    FLOPs, 2 per multiply-add.
  """
  if live_outs is None:
    live_outs = [True] * len(jaxpr.outvars)
  needed = {
      v
      for v, live in zip(jaxpr.outvars, live_outs)
      if live and isinstance(v, core.Var)
  }
  total = 0.0
  for eqn in reversed(jaxpr.eqns):
    outs = [
        not isinstance(v, core.DropVar) and v in needed for v in eqn.outvars
    ]
    if not any(outs) and not eqn.effects:
      continue
    needed.update(v for v in eqn.invars if isinstance(v, core.Var))
    total += _eqn_flops(eqn, outs)
  return total


def dense_flops(fn: Callable[..., Any], *args: Any) -> float:
  """Dense FLOPs of one call `fn(*args)` (args may be abstract values)."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)
