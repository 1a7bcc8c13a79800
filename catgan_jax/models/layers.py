"""Building blocks shared by the catgan_jax generators and discriminators.

The central pieces make strided convolutions fast on XLA:CPU without
changing what they compute or their parameters:

* `ConvTranspose2x`, a stride-2 transposed convolution that computes exactly
  what ``nn.ConvTranspose(..., strides=(2, 2), padding='SAME')`` computes,
  with the same ``kernel``/``bias`` parameters, but without the input-dilated
  convolution whose weight gradient is pathologically slow on XLA:CPU (about
  19 s for one 16->32 px layer of DCGAN-64). `conv_transpose_2x` splits the
  kernel into its four output phases (sub-pixel decomposition): each phase is
  a plain stride-1 convolution over the undilated input, and the results are
  interleaved into the 2x larger output.
* `conv_general_dilated`, a drop-in for ``nn.Conv``'s convolution whose
  input gradient at stride 2 is that same phase decomposition, instead of
  lax's input-dilated convolution (2-3x slower there).

The rest are small helpers the architectures share: normalisation and
activation by name, optional spectral normalisation, initialisers, and the
validation of config values.
"""

from collections.abc import Callable, Sequence
import functools
import math
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any
Initializer = Callable[..., Array]

# PyTorch's BatchNorm momentum 0.1 weights the new batch by 0.1; flax's
# momentum weights the running average, so 0.9 is the same update.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

# Initialisers of the DCGAN recipe: conv/dense weights ~ N(0, 0.02) and
# BatchNorm scales ~ N(1, 0.02).
dcgan_kernel_init = nn.initializers.normal(stddev=0.02)
# SELU networks need LeCun-normal weights to stay self-normalising.
selu_kernel_init = nn.initializers.lecun_normal()

G_NORMS = ('batch', 'none', 'selu')
D_NORMS = ('batch', 'layer', 'none', 'selu')
_NHWC = ('NHWC', 'HWIO', 'NHWC')
# Below this many input channels `conv_general_dilated` keeps lax's input
# gradient (an RGB input layer: 16 ms against 28 ms by phases, batch 64).
_MIN_PHASE_GRAD_CHANNELS = 16
# Below this many output channels `conv_transpose_2x` runs its four phases
# as one convolution (measured on an RGB output layer, see there).
_MIN_PHASE_CONV_FEATURES = 16
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def dcgan_scale_init(
    key: Array, shape: Sequence[int], dtype: Dtype = jnp.float32
) -> Array:
  """BatchNorm scale initialiser of the DCGAN recipe: N(1, 0.02)."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _phase_taps(
    kernel_size: int, phase: int, pad_lo: int
) -> tuple[int, tuple[int, int]]:
  """Kernel taps and padding of one output phase along one spatial axis.

  A stride-2 transposed convolution is a correlation of the kernel with the
  input dilated by 2 (zeros between samples) and padded by (pad_lo, pad_hi).
  Output position o = 2m + phase only meets real samples through the taps j
  with j = pad_lo - phase (mod 2), i.e. through kernel[j0::2], and tap t of
  that sub-kernel reads input m + t + d. The phase is therefore a stride-1
  correlation of the undilated input with kernel[j0::2], padded by
  (-d, n - 1 + d) so that it has as many outputs as inputs.

  Args:
    kernel_size: spatial size k of the full kernel.
    phase: 0 or 1, the output position modulo 2.
    pad_lo: low padding of the equivalent dilated-input correlation.

  Returns:
    (j0, (pad_lo, pad_hi)): the first tap of the phase's sub-kernel and the
    padding of its stride-1 correlation.
  """
  j0 = (pad_lo - phase) % 2
  num_taps = len(range(j0, kernel_size, 2))
  offset = (j0 + phase - pad_lo) // 2  # exact: j0 + phase - pad_lo is even.
  return j0, (-offset, num_taps - 1 + offset)


def same_padding_2x(kernel_size: int) -> tuple[int, int]:
  """Padding `lax.conv_transpose` uses for padding='SAME' at stride 2.

  The padding applies to the input dilated by 2 and always sums to
  kernel_size, so the output is exactly twice the input (TF/Keras 'same').
  """
  stride = 2
  pad_len = kernel_size + stride - 2
  if stride > kernel_size - 1:
    pad_lo = kernel_size - 1
  else:
    pad_lo = math.ceil(pad_len / 2)
  return pad_lo, pad_len - pad_lo


def conv_transpose_2x(
    inputs: Array,
    kernel: Array,
    pad_lo: int,
    precision: lax.PrecisionLike = None,
) -> Array:
  """Stride-2 transposed convolution by phase (sub-pixel) decomposition.

  Computes the correlation of `kernel` (flax's convention: not flipped) with
  the inputs dilated by 2 and padded by `pad_lo` below, cut to exactly twice
  the input size, without the dilation: each output phase (row and column
  parity) is a stride-1 convolution of the undilated inputs with a part of
  the kernel, and the phases are interleaved (depth-to-space). With many
  output channels the four phases are four convolutions; with few (an RGB
  output layer) they are one convolution to 4x the channels over the union
  of their windows, which multiplies by some zero taps but ran 2.5x faster
  there (on XLA:CPU, 64->3 channels at 32->64 px).

  Args:
    inputs: [B, H, W, C].
    kernel: [k, k, C, F].
    pad_lo: low padding of the equivalent dilated-input correlation, the
      same on both spatial axes.
    precision: numerical precision of the convolutions.

  Returns:
    [B, 2H, 2W, F].
  """
  taps = [_phase_taps(kernel.shape[0], phase, pad_lo) for phase in (0, 1)]
  conv = functools.partial(
      lax.conv_general_dilated,
      window_strides=(1, 1),
      dimension_numbers=_NHWC,
      precision=precision,
  )
  if kernel.shape[-1] < _MIN_PHASE_CONV_FEATURES:
    return _phases_as_one_conv(inputs, kernel, taps, conv)
  rows = []
  for j0_h, pad_h in taps:
    cols = []
    for j0_w, pad_w in taps:
      cols.append(
          conv(inputs, kernel[j0_h::2, j0_w::2], padding=(pad_h, pad_w))
      )
    rows.append(jnp.stack(cols, axis=3))  # [B, H, W, 2 (col phase), F]
  y = jnp.stack(rows, axis=2)  # [B, H, 2 (row phase), W, 2, F]
  b, h, _, w, _, f = y.shape
  return y.reshape(b, 2 * h, 2 * w, f)


def _phases_as_one_conv(
    inputs: Array,
    kernel: Array,
    taps: list[tuple[int, tuple[int, int]]],
    conv: Callable[..., Array],
) -> Array:
  """`conv_transpose_2x` as one convolution to 4x the output channels.

  Each phase's sub-kernel is placed, zero-padded, in a window that covers
  every phase's taps; the four phases become the output channels' groups
  and are then moved into place (depth-to-space).
  """
  k = kernel.shape[0]
  num_taps = lambda j0: len(range(j0, k, 2))
  # Phase p reads inputs m - lo_p .. m - lo_p + taps_p - 1 for output m.
  first = min(-lo for _, (lo, _) in taps)
  last = max(-lo + num_taps(j0) - 1 for j0, (lo, _) in taps)
  size = last - first + 1

  def placed(j0, lo):
    return (-lo - first, size - (-lo - first) - num_taps(j0))

  rows = []
  for j0_h, (lo_h, _) in taps:
    cols = []
    for j0_w, (lo_w, _) in taps:
      cols.append(
          jnp.pad(
              kernel[j0_h::2, j0_w::2],
              (placed(j0_h, lo_h), placed(j0_w, lo_w), (0, 0), (0, 0)),
          )
      )
    rows.append(jnp.stack(cols, axis=-2))  # [s, s, C, 2 (col), F]
  combined = jnp.stack(rows, axis=-3)  # [s, s, C, 2 (row), 2 (col), F]
  y = conv(
      inputs,
      combined.reshape(size, size, kernel.shape[2], -1),
      padding=((-first, last), (-first, last)),
  )
  b, h, w, _ = y.shape
  y = y.reshape(b, h, w, 2, 2, -1).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, 2 * h, 2 * w, -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_down_2x(
    inputs: Array, kernel: Array, pad_lo: int, precision: lax.PrecisionLike
) -> Array:
  """Stride-2 convolution with padding pad_lo below (and what 'SAME' adds)."""
  return _strided_conv(inputs, kernel, pad_lo, precision)


def _half_size_pads(kernel_size: int, pad_lo: int) -> tuple[int, int]:
  """Padding of a stride-2 convolution whose output is half its even input."""
  return pad_lo, kernel_size - 2 - pad_lo


def _strided_conv(
    inputs: Array, kernel: Array, pad_lo: int, precision: lax.PrecisionLike
) -> Array:
  pad = _half_size_pads(kernel.shape[0], pad_lo)
  return lax.conv_general_dilated(
      inputs,
      kernel,
      (2, 2),
      (pad, pad),
      dimension_numbers=_NHWC,
      precision=precision,
  )


def _conv_down_2x_fwd(inputs, kernel, pad_lo, precision):
  return _strided_conv(inputs, kernel, pad_lo, precision), (inputs, kernel)


def _conv_down_2x_bwd(pad_lo, precision, residuals, grad):
  inputs, kernel = residuals
  _, kernel_vjp = jax.vjp(
      lambda w: _strided_conv(inputs, w, pad_lo, precision), kernel
  )
  # The input gradient of a stride-2 convolution is a stride-2 transposed
  # convolution with the kernel flipped and its channel axes swapped.
  k = kernel.shape[0]
  flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
  grad_inputs = conv_transpose_2x(grad, flipped, k - 1 - pad_lo, precision)
  return grad_inputs, kernel_vjp(grad)[0]


_conv_down_2x.defvjp(_conv_down_2x_fwd, _conv_down_2x_bwd)


def _grouped_conv_lax(inputs: Array, kernel: Array, groups: int) -> Array:
  k = kernel.shape[0]
  pad = ((k // 2, k // 2),) * 2
  return lax.conv_general_dilated(
      inputs,
      kernel,
      (1, 1),
      pad,
      dimension_numbers=_NHWC,
      feature_group_count=groups,
  )


def _dense_same_conv(inputs: Array, kernel: Array) -> Array:
  k = kernel.shape[0]
  return lax.conv_general_dilated(
      inputs, kernel, (1, 1), ((k // 2, k // 2),) * 2, dimension_numbers=_NHWC
  )


def _per_group(
    fn: Callable[[Array, Array], Array], a: Array, b: Array, groups: int
) -> Array:
  """fn applied to each group's channels (last axis) of `a` and `b`.

  A loop (lax.map) over the groups, so that the program holds one dense
  convolution, not one per group: with a dozen groups in every layer,
  unrolled per-group convolutions multiplied the compile time of R3GAN's
  step. Each result's last axis is concatenated over the groups.
  """
  split = lambda x: jnp.moveaxis(
      x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups), -2, 0
  )
  out = lax.map(lambda ab: fn(*ab), (split(a), split(b)))
  out = jnp.moveaxis(out, 0, -2)
  return out.reshape(*out.shape[:-2], -1)


def _shifted(padded: Array, dy: int, dx: int, h: int, w: int) -> Array:
  return padded[:, dy : dy + h, dx : dx + w]


def _grouped_forward(inputs: Array, kernel: Array, groups: int) -> Array:
  """The grouped convolution from dense parts (per group, or per tap)."""
  b, h, w, c = inputs.shape
  k, _, cin, cout = kernel.shape
  if cin > 1:
    return _per_group(_dense_same_conv, inputs, kernel, groups)
  # Depthwise (one input channel per group): a sum over the taps of
  # broadcast products, elementwise work that XLA fuses, where one
  # convolution per channel would be thousands of tiny ones.
  p = k // 2
  padded = jnp.pad(inputs, ((0, 0), (p, p), (p, p), (0, 0)))
  padded = padded.reshape(b, h + 2 * p, w + 2 * p, groups, cin, 1)
  per_tap = kernel.reshape(k, k, cin, groups, cout // groups).transpose(
      0, 1, 3, 2, 4
  )
  out = sum(
      jnp.sum(_shifted(padded, dy, dx, h, w) * per_tap[dy, dx], axis=-2)
      for dy in range(k)
      for dx in range(k)
  )
  return out.reshape(b, h, w, cout)


def _grouped_kernel_grad_parts(
    inputs: Array, grad: Array, kernel_size: int, groups: int
) -> Array:
  """d(loss)/d(kernel) of `_grouped_forward` for output gradient `grad`."""
  cin, cout = inputs.shape[-1] // groups, grad.shape[-1]
  k = kernel_size
  if cin > 1:
    # Per tap, one matmul per group (a dot_general batched over the
    # groups) of the group's shifted input [cin, pixels] with its output
    # gradient [pixels, cout/groups]: ~10x faster on XLA:CPU than a dense
    # convolution's kernel gradient per group in a lax.map (R3GAN's 16
    # channel groups at 32x32, batch 32), 1.3x faster than one matmul of
    # im2col patches (which hold k*k times the input), and quicker to
    # compile than either.
    b, h, w, _ = inputs.shape
    p = k // 2
    per_group = jnp.moveaxis(inputs.reshape(b, h, w, groups, cin), 3, 0)
    padded = jnp.pad(per_group, ((0, 0), (0, 0), (p, p), (p, p), (0, 0)))
    grads = jnp.moveaxis(grad.reshape(b * h * w, groups, cout // groups), 1, 0)
    taps = [
        lax.dot_general(
            padded[:, :, dy : dy + h, dx : dx + w].reshape(
                groups, b * h * w, cin
            ),
            grads,
            (((1,), (1,)), ((0,), (0,))),
        )
        for dy in range(k)
        for dx in range(k)
    ]  # Each [groups, cin, cout / groups].
    out = jnp.stack(taps).reshape(k, k, groups, cin, cout // groups)
    return jnp.moveaxis(out, 2, 3).reshape(k, k, cin, cout)
  # lax's own kernel gradient of a depthwise convolution (batch_group_count
  # = channels) is the fastest form measured for it on XLA:CPU.
  zero = jnp.zeros((k, k, cin, cout), inputs.dtype)
  return jax.linear_transpose(
      lambda kk: _grouped_conv_lax(inputs, kk, groups), zero
  )(grad)[0]


def _transposed_grouped_kernel(kernel: Array, groups: int) -> Array:
  """The kernel whose grouped conv is the input gradient of `kernel`'s.

  Spatially flipped, with each group's input and output channels swapped.
  """
  k, _, cin, cout = kernel.shape
  per_group = kernel.reshape(k, k, cin, groups, cout // groups)
  flipped = per_group[::-1, ::-1].transpose(0, 1, 4, 3, 2)
  return flipped.reshape(k, k, cout // groups, groups * cin)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _grouped_conv_parts(inputs: Array, kernel: Array, groups: int) -> Array:
  return _grouped_forward(inputs, kernel, groups)


def _grouped_conv_parts_fwd(inputs, kernel, groups):
  return _grouped_forward(inputs, kernel, groups), (inputs, kernel)


def _grouped_conv_parts_bwd(groups, residuals, grad):
  inputs, kernel = residuals
  grad_inputs = _grouped_conv_parts(
      grad, _transposed_grouped_kernel(kernel, groups), groups
  )
  grad_kernel = _grouped_kernel_grad(inputs, grad, kernel.shape[0], groups)
  return grad_inputs, grad_kernel.astype(kernel.dtype)


_grouped_conv_parts.defvjp(_grouped_conv_parts_fwd, _grouped_conv_parts_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _grouped_kernel_grad(
    inputs: Array, grad: Array, kernel_size: int, groups: int
) -> Array:
  return _grouped_kernel_grad_parts(inputs, grad, kernel_size, groups)


def _grouped_kernel_grad_fwd(inputs, grad, kernel_size, groups):
  out = _grouped_kernel_grad_parts(inputs, grad, kernel_size, groups)
  return out, (inputs, grad)


def _grouped_kernel_grad_bwd(kernel_size, groups, residuals, cotangent):
  # The kernel gradient is bilinear: <dk, kg(x, g)> = <g, conv(x, dk)> =
  # <x, conv(g, transposed(dk))>, so its derivatives are grouped convs.
  inputs, grad = residuals
  cotangent = cotangent.astype(inputs.dtype)
  return (
      _grouped_conv_parts(
          grad, _transposed_grouped_kernel(cotangent, groups), groups
      ),
      _grouped_conv_parts(inputs, cotangent, groups),
  )


_grouped_kernel_grad.defvjp(_grouped_kernel_grad_fwd, _grouped_kernel_grad_bwd)


def grouped_conv(inputs: Array, kernel: Array, groups: int) -> Array:
  """Stride-1 'SAME' grouped convolution (odd kernel), NHWC / HWIO.

  Same outputs and derivatives as ``lax.conv_general_dilated(...,
  feature_group_count=groups)``. On XLA:CPU, lax's grouped convolution is
  slow in every direction (R3GAN's 3x3, 16-channel groups, 192 channels,
  32x32 px, batch 32: forward 10, kernel gradient 5.5, double backward
  12 GFLOP/s, where a dense convolution of the same FLOPs runs at 22-75),
  so there it is computed from dense parts with a custom derivative that
  uses only the same parts: one dense convolution per group (forward and
  input gradient, the latter with the flipped, channel-swapped kernel) and
  for the kernel gradient, per tap, one matmul of each group's shifted
  input with its output gradient, batched over the groups; the kernel gradient
  is bilinear, so its own derivatives (the double backward of R1 / R2
  penalties) are again grouped convolutions. Groups of few channels
  (depthwise convolutions) are a sum over the taps of broadcast products
  instead, which XLA fuses. Elsewhere (GPU, TPU) it is lax's native
  grouped convolution.
  """
  if jax.default_backend() == 'cpu':
    return _grouped_conv_parts(inputs, kernel, groups)
  return _grouped_conv_lax(inputs, kernel, groups)


def _is_plain_nhwc(
    lhs,
    rhs,
    window_strides,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    kwargs,
) -> bool:
  return (
      lhs.ndim == 4
      and not kwargs
      and all(
          d == 1
          for d in tuple(window_strides)
          + tuple((lhs_dilation or ()) + (rhs_dilation or ()))
      )
      and lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
      == lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  )


def conv_general_dilated(
    lhs: Array,
    rhs: Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    precision: lax.PrecisionLike = None,
    **kwargs,
) -> Array:
  """`lax.conv_general_dilated` with a faster input gradient at stride 2.

  A drop-in for ``nn.Conv(conv_general_dilated=...)``: same arguments, same
  outputs and the same parameters. For a 2x downsampling convolution (stride
  2, NHWC, even input size, output half of it, no dilation or groups) the
  input gradient, which lax computes as an input-dilated convolution, is
  computed by phase decomposition instead (`conv_transpose_2x`): 2-3x faster
  on XLA:CPU for DCGAN's 64- to 512-channel layers at batch 64, and exact.
  The input gradient is what the generator's update and the gradient
  penalties backpropagate through the discriminator. With few input
  channels (an RGB image) the phase form is slower, so lax's is used.
  A stride-1 'SAME' grouped convolution (feature_group_count > 1, odd
  square kernel) is `grouped_conv`, whose kernel gradient avoids lax's slow
  one. Every other case is plain `lax.conv_general_dilated`.
  """
  if feature_group_count > 1:
    k = rhs.shape[0]
    same = [(k // 2, k // 2)] * 2
    pads = (
        lax.padtype_to_pads(
            lhs.shape[1:3], rhs.shape[:2], window_strides, padding
        )
        if isinstance(padding, str)
        else [tuple(p) for p in padding]
    )
    if (
        _is_plain_nhwc(
            lhs,
            rhs,
            window_strides,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            kwargs,
        )
        and k % 2 == 1
        and rhs.shape[1] == k
        and list(pads) == same
    ):
      return grouped_conv(lhs, rhs, feature_group_count)
  lax_conv = functools.partial(
      lax.conv_general_dilated,
      lhs,
      rhs,
      window_strides,
      padding,
      lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      precision=precision,
      **kwargs,
  )
  if (
      lhs.ndim != 4
      or tuple(window_strides) != (2, 2)
      or kwargs
      or feature_group_count != 1
      or rhs.shape[0] != rhs.shape[1]
      or any(d != 1 for d in (lhs_dilation or ()) + (rhs_dilation or ()))
      or lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
      != lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      or lhs.shape[-1] < _MIN_PHASE_GRAD_CHANNELS
  ):
    return lax_conv()
  h, w = lhs.shape[1:3]
  k = rhs.shape[0]
  pads = (
      lax.padtype_to_pads((h, w), (k, k), (2, 2), padding)
      if isinstance(padding, str)
      else [tuple(p) for p in padding]
  )
  pad_lo = pads[0][0]
  if (
      h % 2
      or w % 2
      or not 0 <= pad_lo <= k - 2
      or any(tuple(p) != _half_size_pads(k, pad_lo) for p in pads)
  ):
    return lax_conv()
  return _conv_down_2x(lhs, rhs, pad_lo, precision)


class ConvTranspose2x(nn.Module):
  """Stride-2 'SAME' transposed convolution: output is 2x the input size.

  Computes exactly what ``nn.ConvTranspose(features, (k, k), strides=(2, 2),
  padding='SAME', use_bias=use_bias)`` computes (flax's convention: the kernel
  is not flipped), with the same parameters (``kernel`` of shape
  (k, k, in, features), ``bias``), so checkpoints are interchangeable. For
  k=4 this is PyTorch's ``ConvTranspose2d(k=4, stride=2, padding=1)`` up to
  PyTorch's flipped kernel storage; for k=5 it is TF/Keras
  ``Conv2DTranspose(5, strides=2, padding='same')``.

  Implemented by `conv_transpose_2x`: four stride-1 convolutions, one per
  output phase, whose outputs are interleaved (depth-to-space); this avoids
  the input-dilated convolution whose weight gradient is very slow on
  XLA:CPU. Forward plus backward of a 16->32 px, 256->128 channel, batch-64
  layer (k=4) on two busy CPU cores took ~10x less time than
  ``nn.ConvTranspose`` and ~2x less than one 3x3 convolution to 4x the
  channels followed by depth-to-space (which spends 9/4 the multiply-adds on
  zero taps); with fewer than 16 output channels (an RGB output layer) that
  one-convolution form is the faster one, and is used.

  Attributes:
    features: number of output channels.
    kernel_size: spatial size k of the square kernel (k >= 2).
    use_bias: whether to add a bias.
    dtype: compute dtype (default: inferred from input and params).
    param_dtype: dtype of the parameters.
    precision: numerical precision of the convolutions.
    kernel_init: initialiser of the kernel.
    bias_init: initialiser of the bias.
  """

  features: int
  kernel_size: int
  use_bias: bool = True
  dtype: Dtype | None = None
  param_dtype: Dtype = jnp.float32
  precision: lax.PrecisionLike = None
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    """Upsamples inputs [B, H, W, C] to [B, 2H, 2W, features]."""
    k = self.kernel_size
    if k < 2:
      raise ValueError(f'ConvTranspose2x needs kernel_size >= 2, got {k}.')
    kernel = self.param(
        'kernel',
        self.kernel_init,
        (k, k, inputs.shape[-1], self.features),
        self.param_dtype,
    )
    bias = (
        self.param('bias', self.bias_init, (self.features,), self.param_dtype)
        if self.use_bias
        else None
    )
    inputs, kernel, bias = nn.dtypes.promote_dtype(
        inputs, kernel, bias, dtype=self.dtype
    )

    y = conv_transpose_2x(inputs, kernel, same_padding_2x(k)[0], self.precision)
    if bias is not None:
      y = y + bias
    return y


def parse_dtype(name: str) -> Dtype:
  """Compute dtype for a config.model.dtype string."""
  if name not in DTYPES:
    raise ValueError(
        f'model.dtype={name!r} is not supported '
        f'(valid: {", ".join(map(repr, DTYPES))}).'
    )
  return DTYPES[name]


def check_choice(field: str, value: str, valid: Sequence[str]) -> None:
  """Raises a one-line ValueError when a config string is not in `valid`."""
  if value not in valid:
    raise ValueError(
        f'{field}={value!r} is not supported '
        f'(valid: {", ".join(map(repr, valid))}).'
    )


def check_image_size(
    model_name: str, image_size: int, supported: Sequence[int]
) -> None:
  """Raises a one-line ValueError for an image size a model cannot build."""
  if image_size not in supported:
    raise ValueError(
        f'data.image_size={image_size} is not supported by '
        f'model.name={model_name!r} '
        f'(supported: {", ".join(str(s) for s in supported)}).'
    )


def num_doublings(image_size: int, base: int) -> int:
  """Number of 2x up/downsamplings between `base` and image_size (powers of 2)."""
  return int(round(math.log2(image_size / base)))


def resolve_d_norm(norm: str, d_norm: str, spectral_norm: bool = False) -> str:
  """The discriminator's normalisation: d_norm, or norm when d_norm is ''.

  Raises a ValueError for spectral normalisation followed by LayerNorm: a
  per-sample normalisation undoes any rescaling of the layer before it, so
  SN would silently do nothing (for BatchNorm see `sn_feature_norm`).
  """
  check_choice('model.norm', norm, G_NORMS)
  resolved = d_norm or norm
  check_choice('model.d_norm', resolved, D_NORMS)
  if spectral_norm and resolved == 'layer':
    raise ValueError(
        'model.spectral_norm=True has no effect with '
        "model.d_norm='layer' (LayerNorm undoes the layer's "
        "scale); use d_norm='none' or 'batch'"
    )
  return resolved


def sn_feature_norm(norm: str, spectral_norm: bool) -> str:
  """The normalisation a discriminator applies after its weight layers.

  BatchNorm after a spectrally normalised layer undoes the normalisation
  (BN(x / sigma) = BN(x)), so with spectral_norm=True a 'batch'
  discriminator drops its BatchNorm and keeps its bias-free layers, as the
  relativistic-GAN code does (RelativisticGAN ``code/GAN_losses_iter.py``:
  ``--spectral`` "will also remove batch norm in the discriminator").
  """
  return 'none' if spectral_norm and norm == 'batch' else norm


def normalize(
    x: Array,
    kind: str,
    train: bool,
    dtype: Dtype,
    scale_init: Initializer = nn.initializers.ones_init(),
) -> Array:
  """Applies the normalisation named `kind` (or none) to NHWC/NC features.

  'batch' keeps its running statistics in the ``batch_stats`` collection.
  'layer' normalises each sample over all its features (C, H, W for images),
  as WGAN-GP critics do, with a per-channel scale and offset.
  'none' and 'selu' leave x unchanged.
  """
  if kind == 'batch':
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        dtype=dtype,
        scale_init=scale_init,
    )(x)
  if kind == 'layer':
    return nn.LayerNorm(
        reduction_axes=tuple(range(1, x.ndim)),
        feature_axes=-1,
        epsilon=BN_EPSILON,
        dtype=dtype,
    )(x)
  return x


def activate(x: Array, kind: str, negative_slope: float | None = None) -> Array:
  """SELU for kind='selu', else LeakyReLU(negative_slope) or ReLU if None."""
  if kind == 'selu':
    return nn.selu(x)
  if negative_slope is None:
    return nn.relu(x)
  return nn.leaky_relu(x, negative_slope)


def _l2_normalize(x: Array, eps: float) -> Array:
  # torch.nn.functional.normalize: x / max(||x||, eps).
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


class SpectralNorm(nn.Module):
  """Spectral normalisation as PyTorch's ``torch.nn.utils.spectral_norm``.

  The stored parameter is the raw weight W (PyTorch's ``weight_orig``); the
  wrapped layer computes with W / sigma, sigma = u^T W v estimated by
  ``n_steps`` power iterations from the ``u`` kept in ``collection_name``
  (updated only when ``update_stats``; gradients do not flow through u, v).
  Weights are reshaped to (-1, out) (flax's layout; torch's (out, -1) is its
  transpose, the same sigma). flax's ``nn.SpectralNorm`` instead writes
  W / sigma into the parameter at init, so the optimiser starts from, and
  Adam's step sizes are relative to, a rescaled kernel; here the kernel
  keeps its initialiser's scale, as in PyTorch.

  Outside training (``update_stats=False``) the power iteration is still run
  from the stored ``u`` but not kept (as flax's); torch's eval mode reuses
  its stored ``v`` instead, a difference of one power iteration.

  Variables: ``<layer>/kernel/u`` [1, out] (initialised as a normalised
  normal draw, as torch's) and ``<layer>/kernel/sigma`` (the last estimate,
  for inspection) for every weight of 2 or more dimensions; biases are not
  normalised.

  Attributes:
    layer_instance: the layer to normalise (a Conv or Dense).
    n_steps: power iterations per call (torch's n_power_iterations=1).
    epsilon: torch's eps of the normalisations.
    collection_name: collection of ``u`` and ``sigma``.
  """

  layer_instance: nn.Module
  n_steps: int = 1
  epsilon: float = 1e-12
  collection_name: str = 'batch_stats'

  @nn.compact
  def __call__(self, *args, update_stats: bool, **kwargs) -> Array:
    """Calls the layer with its weights divided by their spectral norm."""
    initializing = self.is_initializing()

    def normalize(path, w):
      if w.ndim <= 1:
        return w
      matrix = jnp.reshape(w, (-1, w.shape[-1]))
      name = '/'.join(
          [self.layer_instance.name] + [str(k.key) for k in path[1:]]
      )
      u_var = self.variable(
          self.collection_name,
          name + '/u',
          lambda: _l2_normalize(
              jax.random.normal(
                  self.make_rng('params'), (1, matrix.shape[-1]), jnp.float32
              ),
              self.epsilon,
          ),
      )
      sigma_var = self.variable(
          self.collection_name, name + '/sigma', jnp.ones, (), jnp.float32
      )
      if initializing:
        # The parameter must be stored as initialised (see the docstring);
        # whatever is returned here at init is what flax stores.
        return w
      u = u_var.value
      for _ in range(self.n_steps):
        v = _l2_normalize(u @ matrix.T, self.epsilon)
        u = _l2_normalize(v @ matrix, self.epsilon)
      u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
      sigma = (v @ matrix @ u.T)[0, 0]
      if update_stats:
        u_var.value = u
        sigma_var.value = sigma
      return w / sigma

    return nn.map_variables(
        lambda layer: layer(*args, **kwargs),
        'params',
        trans_in_fn=lambda vs: jax.tree_util.tree_map_with_path(normalize, vs),
        init=initializing,
    )(self.layer_instance)


def d_stage(
    x: Array,
    conv: nn.Module,
    index: int,
    *,
    feature_norm: str,
    norm: str,
    leak: float,
    spectral_norm: bool,
    train: bool,
    dtype: Dtype,
    scale_init: Initializer = nn.initializers.ones_init(),
) -> Array:
  """One stage of a DCGAN-family discriminator: conv, norm, activation.

  The convolution (spectrally normalised when asked), then `feature_norm`
  except after the first convolution (`index` 0; DCGAN does not normalise
  the input layer), then LeakyReLU(`leak`), or SELU for norm='selu'. Called
  from the discriminator's compact method, so its submodules are the
  discriminator's own (same names as if written out there).
  """
  x = apply_layer(conv, x, spectral_norm, train)
  if index > 0:
    x = normalize(x, feature_norm, train, dtype, scale_init)
  return activate(x, norm, leak)


def apply_layer(
    layer: nn.Module, x: Array, spectral_norm: bool, train: bool
) -> Array:
  """Calls `layer`, spectrally normalised when asked (`SpectralNorm`).

  Spectral normalisation keeps its power-iteration state (``u``, ``sigma``)
  in ``batch_stats`` and updates it only when training. Must be called from
  inside a compact method, like any submodule construction.
  """
  if spectral_norm:
    return SpectralNorm(layer)(x, update_stats=train)
  return layer(x)


def scale_width(channels: int, width: int, native_width: int = 64) -> int:
  """Channel count of a fixed-width architecture scaled by width/native."""
  return max(1, channels * width // native_width)


def build_pair(config, name: str, sizes, generator_cls, discriminator_cls):
  """(generator, discriminator) of a fixed architecture from `config.model`.

  The shared builder of the architectures whose only options are width,
  normalisation, spectral norm and dtype (keras_dcgan, dcgan128_tf).

  Args:
    config: the run config (model.* and data.image_size).
    name: the architecture's model.name, for error messages.
    sizes: the image sizes it supports.
    generator_cls: its Generator module class.
    discriminator_cls: its Discriminator module class.

  Returns:
    The unbound generator and discriminator.
  """
  check_image_size(name, config.data.image_size, sizes)
  d_norm = resolve_d_norm(
      config.model.norm, config.model.d_norm, config.model.spectral_norm
  )
  dtype = parse_dtype(config.model.dtype)
  generator = generator_cls(
      image_size=config.data.image_size,
      width=config.model.g_width,
      norm=config.model.norm,
      dtype=dtype,
  )
  discriminator = discriminator_cls(
      image_size=config.data.image_size,
      width=config.model.d_width,
      norm=d_norm,
      spectral_norm=config.model.spectral_norm,
      dtype=dtype,
  )
  return generator, discriminator
