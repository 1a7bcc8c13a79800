"""R3GAN (Huang et al., NeurIPS 2024): the modern baseline GAN's networks.

"The GAN is dead; long live the GAN! A Modern GAN Baseline"; a port of
``R3GAN/Networks.py``, ``R3GAN/Resamplers.py`` and ``R3GAN/FusedOperators.py``
of the authors' code (github.com/brownvc/R3GAN), layer for layer:

  G: z -> GenerativeBasis (a learned 4x4 basis, per channel times Linear(z))
     -> blocks at 4x4 -> [1x1 conv if the width changes, 2x upsample,
     blocks] per stage -> 1x1 conv to RGB.
  D: 1x1 conv from RGB -> [blocks, 2x downsample, 1x1 conv if the width
     changes] per stage -> blocks at 4x4 -> DiscriminativeBasis (depthwise
     4x4 valid conv) -> Linear to one logit.

A residual block is a ResNeXt-style inverted bottleneck: 1x1 conv to
`expansion` x the channels, bias + LeakyReLU(0.2), 3x3 grouped conv with
`group_channels` channels per group, bias + LeakyReLU(0.2), 1x1 conv back,
added to the input. There is no normalisation anywhere, and the convolutions
and linear layers have no biases (only the activations do), as in the
reference. Initialisation is the reference's fix-up: weights ~ N(0, gain /
sqrt(fan_in)); each block's last conv is zero (so every block starts as the
identity) and its first two use the LeakyReLU gain times L^(-1/(2m-2)) =
L^(-1/4) with m = 3 layers per branch and L = the number of residual blocks
of the network; every other layer has gain 1, the generative basis is
N(0, 1). Resampling is the reference's interpolative up/downsampler: its
[1, 2, 1] filter is convolved with [1, 1] into the [1, 3, 3, 1] low-pass
(``CreateLowpassKernel(Inplace=False)``), applied as StyleGAN2's
``upfirdn2d.upsample2d`` / ``downsample2d`` (zero padding at the borders).

`widths` lists the channels of G's stages from 4x4 up (the reference's
``WidthPerStage``); D uses the same width at each resolution (the reference
passes it the reversed list). A model for an image size below the list's
uses its first stages, so one list serves several sizes. As in
`keras_dcgan`, config.model.r3gan_widths are the channels at
g_width = d_width = 64 and scale by g_width / 64 (G) and d_width / 64 (D)
otherwise, which is how the tests shrink the full-size configs.

Deliberate differences: the generator's training output is linear, as in the
reference (no tanh), but with train=False (sampling, FID, exported images)
it is clipped to [-1, 1], the reference's clamp when it writes images and
computes metrics. Neither network has `batch_stats`.

Class conditioning (data.num_classes > 0, model.g_cond='concat',
model.d_cond='projection') is the reference's ``ConditionEmbeddingDimension``
path of ``Networks.py``: G concatenates a class embedding (a bias-free
Linear of the one-hot label, MSR-initialised: N(0, 1 / sqrt(C))) to z
before the generative basis, whose Linear then has z_dim + the embedding's
inputs; D's final Linear gives a vector of the 4x4 stage's width (the
reference's ``ConditionEmbeddingDimension = WidthPerStage[0]``) instead of
one logit, and the logit is its inner product with D's class embedding
(bias-free Linear, N(0, (1 / sqrt(E)) / sqrt(C))). The one-hot Linear is an
embedding table here (the same product). G's embedding has model.cond_dim
entries; the reference's presets use z_dim (64), so its recipe is
``--config.model.cond_dim=64``. An unconditional network is unchanged.

Precision (model.dtype): 'float32' everywhere, or 'bfloat16' as the
reference's mixed precision (``FP16Stages`` of its train.py presets, which
set those stages' ``DataType`` to torch.bfloat16 in training/networks.py):
the `BF16_STAGES` highest-resolution stages of G and of D compute in
bfloat16, the rest in float32; at 64 px (and 32 px) that is every stage but
the 4x4 one. A stage casts its input to its dtype and runs its transition
in it (G: the 1x1 conv and upsampling into it, D: the downsampling and 1x1
conv out of it), so G's output conv and D's input conv run in bfloat16 and
G's generative basis, D's 4x4 stage, basis and linear head in float32.
Parameters stay float32; images and logits come out float32.
"""

from collections.abc import Sequence
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from catgan_jax.models import conditioning
from catgan_jax.models import layers

NAME = 'r3gan'
SUPPORTED_SIZES = (16, 32, 64, 128, 256)
LEAK = 0.2
# The reference's BiasedActivation.Gain: the variance gain of LeakyReLU(0.2).
ACTIVATION_GAIN = math.sqrt(2 / (1 + LEAK**2))
# Linear layers per residual branch (the m of the fix-up scaling L^(-1/(2m-2))).
LAYERS_PER_BRANCH = 3
# Per axis, the [1, 2, 1] filter convolved with [1, 1] and normalised.
_LOWPASS = (1 / 8, 3 / 8, 3 / 8, 1 / 8)
# Stages in bfloat16 with model.dtype='bfloat16': the reference's
# FP16Stages = [-1, -2, -3, -4] (64 and 256 px presets; its 32 px presets
# have [-1, -2, -3], all but 4x4 there too).
BF16_STAGES = 4


def stage_dtypes(num_stages: int, dtype: layers.Dtype) -> list[layers.Dtype]:
  """Compute dtype of each stage from 4x4 up (see the module docstring)."""
  if dtype == jnp.float32:
    return [jnp.float32] * num_stages
  low = num_stages - min(BF16_STAGES, num_stages - 1)
  return [jnp.float32] * low + [dtype] * (num_stages - low)


def msr_init(gain: float = 1.0) -> layers.Initializer:
  """The reference's MSRInitializer: N(0, gain / sqrt(fan_in)), zero at gain 0.

  fan_in is the kernel's receptive field times its input channels per group,
  as in PyTorch (``weight.size(1) * weight[0][0].numel()``).
  """
  if gain == 0:
    return nn.initializers.zeros_init()
  return nn.initializers.variance_scaling(gain**2, 'fan_in', 'normal')


def block_gain(num_blocks: int) -> float:
  """Init gain of a residual branch's first two convs (fix-up scaling)."""
  return ACTIVATION_GAIN * num_blocks ** (-1 / (2 * LAYERS_PER_BRANCH - 2))


def _upsample_axis(x: jax.Array, axis: int) -> jax.Array:
  """2x upsampling along `axis` with the [1, 3, 3, 1] filter (gain 2).

  upsample2d zero-stuffs, pads by (2, 1) and filters: even outputs are
  (x[m-1] + 3 x[m]) / 4, odd ones (3 x[m] + x[m+1]) / 4, zero outside.
  """
  n = x.shape[axis]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (1, 1)
  xp = jnp.pad(x, pad)
  take = lambda start: jax.lax.slice_in_dim(xp, start, start + n, axis=axis)
  prev, mid, nxt = take(0), take(1), take(2)
  even = 0.25 * prev + 0.75 * mid
  odd = 0.75 * mid + 0.25 * nxt
  y = jnp.stack([even, odd], axis=axis + 1)
  shape = list(x.shape)
  shape[axis] = 2 * n
  return y.reshape(shape)


def _downsample_axis(x: jax.Array, axis: int) -> jax.Array:
  """2x downsampling along `axis`: pad by 1, [1, 3, 3, 1] / 8, stride 2."""
  n = x.shape[axis]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (1, 1)
  xp = jnp.pad(x, pad)
  return sum(
      w * jax.lax.slice_in_dim(xp, j, j + n - 1, stride=2, axis=axis)
      for j, w in enumerate(_LOWPASS)
  )


def upsample(x: jax.Array) -> jax.Array:
  """The reference's InterpolativeUpsampler on NHWC images: [B, 2H, 2W, C]."""
  return _upsample_axis(_upsample_axis(x, 1), 2)


def downsample(x: jax.Array) -> jax.Array:
  """The reference's InterpolativeDownsampler on NHWC: [B, H/2, W/2, C]."""
  return _downsample_axis(_downsample_axis(x, 1), 2)


class BiasedActivation(nn.Module):
  """A per-channel bias (zero at init) then LeakyReLU(0.2), no gain."""

  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    bias = self.param('bias', nn.initializers.zeros_init(), (x.shape[-1],))
    return nn.leaky_relu(x + bias.astype(self.dtype), LEAK)


def _conv(
    features: int,
    kernel_size: int,
    gain: float,
    dtype: layers.Dtype,
    groups: int = 1,
    name: str | None = None,
) -> nn.Conv:
  """A bias-free 'SAME' convolution with the reference's initialisation."""
  return nn.Conv(
      features,
      (kernel_size, kernel_size),
      padding='SAME',
      feature_group_count=groups,
      use_bias=False,
      kernel_init=msr_init(gain),
      dtype=dtype,
      name=name,
      # Grouped convs with a kernel gradient that is fast on CPU.
      conv_general_dilated=layers.conv_general_dilated,
  )


class ResidualBlock(nn.Module):
  """Inverted-bottleneck residual block; the identity at initialisation.

  Attributes:
    expansion: the hidden width is expansion x the block's channels.
    group_channels: channels per group of the 3x3 grouped conv.
    num_blocks: residual blocks in the whole network (L of the fix-up init).
    kernel_size: spatial size of the grouped conv.
    dtype: compute dtype.
  """

  expansion: int = 2
  group_channels: int = 16
  num_blocks: int = 1
  kernel_size: int = 3
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    hidden = channels * self.expansion
    gain = block_gain(self.num_blocks)
    y = _conv(hidden, 1, gain, self.dtype)(x)
    y = BiasedActivation(self.dtype)(y)
    y = _conv(
        hidden,
        self.kernel_size,
        gain,
        self.dtype,
        groups=hidden // self.group_channels,
    )(y)
    y = BiasedActivation(self.dtype)(y)
    y = _conv(channels, 1, 0.0, self.dtype)(y)
    return x + y


def class_embedding(
    num_classes: int, features: int, gain: float, name: str
) -> nn.Embed:
  """The reference's bias-free Linear of a one-hot label, as a table.

  ``MSRInitializer(nn.Linear(C, E, bias=False), gain)``: N(0, gain /
  sqrt(C)), fan_in being the one-hot's C entries.
  """
  return nn.Embed(
      num_classes,
      features,
      embedding_init=nn.initializers.normal(gain / math.sqrt(num_classes)),
      name=name,
  )


def _stage_widths(widths: Sequence[int], image_size: int) -> list[int]:
  """The widths of the stages from 4x4 up to `image_size`."""
  num_stages = layers.num_doublings(image_size, 4) + 1
  if len(widths) < num_stages:
    raise ValueError(
        f'model.r3gan_widths={tuple(widths)} has {len(widths)} stages; '
        f'data.image_size={image_size} needs {num_stages} (4x4 up).'
    )
  return list(widths[:num_stages])


class Generator(nn.Module):
  """R3GAN generator: z [B, z_dim] -> images [B, S, S, 3].

  Attributes:
    image_size: side S of the output images.
    widths: channels per stage from 4x4 up (the first log2(S/4)+1 are used).
    blocks_per_stage: residual blocks per stage.
    expansion: hidden width factor of the residual blocks.
    group_channels: channels per group of the grouped convs.
    dtype: compute dtype; parameters stay float32, outputs are float32.
    num_classes: classes of the labels y (0: unconditional).
    cond_dim: size of the class embedding concatenated to z.
  """

  image_size: int = 64
  widths: Sequence[int] = (768, 768, 768, 768, 384)
  blocks_per_stage: int = 2
  expansion: int = 2
  group_channels: int = 16
  dtype: layers.Dtype = jnp.float32
  num_classes: int = 0
  cond_dim: int = 64

  @nn.compact
  def __call__(
      self, z: jax.Array, train: bool, y: jax.Array | None = None
  ) -> jax.Array:
    """Generates images (of classes `y`, if conditional).

    Linear when training, clipped to [-1, 1] otherwise.
    """
    widths = _stage_widths(self.widths, self.image_size)
    dtypes = stage_dtypes(len(widths), self.dtype)
    block = lambda dtype: ResidualBlock(
        self.expansion,
        self.group_channels,
        self.blocks_per_stage * len(widths),
        dtype=dtype,
    )
    if self.num_classes:
      y = conditioning.labels_or_cycle(y, z.shape[0], self.num_classes)
      embedding = class_embedding(
          self.num_classes, self.cond_dim, 1.0, 'class_embedding'
      )(y)
      z = jnp.concatenate([z, embedding.astype(z.dtype)], axis=-1)
    # GenerativeBasis: a learned 4x4 map per channel, scaled by Linear(z).
    basis = self.param('basis', nn.initializers.normal(1.0), (4, 4, widths[0]))
    scale = nn.Dense(
        widths[0], use_bias=False, kernel_init=msr_init(), dtype=dtypes[0]
    )(z.astype(dtypes[0]))
    x = basis.astype(dtypes[0])[None] * scale[:, None, None, :]
    for i, (features, dtype) in enumerate(zip(widths, dtypes)):
      x = x.astype(dtype)
      if i > 0:
        if features != x.shape[-1]:
          x = _conv(features, 1, 1.0, dtype)(x)
        x = upsample(x)
      for _ in range(self.blocks_per_stage):
        x = block(dtype)(x)
    x = _conv(3, 1, 1.0, dtypes[-1])(x).astype(jnp.float32)
    return x if train else jnp.clip(x, -1.0, 1.0)


class Discriminator(nn.Module):
  """R3GAN discriminator: images [B, S, S, 3] -> raw logits [B].

  Attributes:
    image_size: side S of the input images.
    widths: channels per stage from 4x4 up, as for the generator (D runs
      them from S x S down).
    blocks_per_stage: residual blocks per stage.
    expansion: hidden width factor of the residual blocks.
    group_channels: channels per group of the grouped convs.
    dtype: compute dtype; parameters stay float32, logits are float32.
    num_classes: classes of the labels y (0: unconditional).
  """

  image_size: int = 64
  widths: Sequence[int] = (768, 768, 768, 768, 384)
  blocks_per_stage: int = 2
  expansion: int = 2
  group_channels: int = 16
  dtype: layers.Dtype = jnp.float32
  num_classes: int = 0

  @nn.compact
  def __call__(
      self, x: jax.Array, train: bool, y: jax.Array | None = None
  ) -> jax.Array:
    """Scores images (as of classes `y`, if conditional); larger is 'real'."""
    del train  # No batch statistics: training and inference are the same.
    widths = _stage_widths(self.widths, self.image_size)[::-1]
    dtypes = stage_dtypes(len(widths), self.dtype)[::-1]
    block = lambda dtype: ResidualBlock(
        self.expansion,
        self.group_channels,
        self.blocks_per_stage * len(widths),
        dtype=dtype,
    )
    x = _conv(widths[0], 1, 1.0, dtypes[0])(x.astype(dtypes[0]))
    for i, features in enumerate(widths):
      if i > 0:
        # The transition out of stage i - 1 runs in that stage's dtype.
        x = downsample(x)
        if features != x.shape[-1]:
          x = _conv(features, 1, 1.0, dtypes[i - 1])(x)
      x = x.astype(dtypes[i])
      for _ in range(self.blocks_per_stage):
        x = block(dtypes[i])(x)
    # DiscriminativeBasis: a depthwise 4x4 valid conv, then Linear to 1. On
    # a 4x4 map the depthwise conv is a per-channel weighted sum, written as
    # one (lax's depthwise kernel gradient is slow on XLA:CPU); the kernel
    # has the depthwise conv's shape and fan-in (16).
    basis = self.param('basis', msr_init(), (4, 4, 1, x.shape[-1]))
    x = jnp.einsum('bhwc,hwc->bc', x, basis[:, :, 0].astype(dtypes[-1]))
    # Conditional: a vector of the 4x4 width, projected on the class's
    # embedding (the reference's ConditionEmbeddingDimension = its width).
    out = x.shape[-1] if self.num_classes else 1
    x = nn.Dense(out, use_bias=False, kernel_init=msr_init(), dtype=dtypes[-1])(
        x
    ).astype(jnp.float32)
    if self.num_classes:
      y = conditioning.labels_or_cycle(y, x.shape[0], self.num_classes)
      embedding = class_embedding(
          self.num_classes, out, 1 / math.sqrt(out), 'class_embedding'
      )(y)
      x = jnp.sum(x * embedding, axis=-1, keepdims=True)
    return x.reshape(x.shape[0])


def build(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for config.data.image_size."""
  size = config.data.image_size
  layers.check_image_size(NAME, size, SUPPORTED_SIZES)
  model = config.model
  _stage_widths(model.r3gan_widths, size)  # A one-line error now.
  num_classes = config.data.get('num_classes', 0)
  g_cond, d_cond = model.get('g_cond', ''), model.get('d_cond', '')
  conditioning.check(num_classes, g_cond, d_cond)
  conditioning.check_reference_choices(
      NAME, g_cond, d_cond, 'concat', 'projection'
  )
  if model.r3gan_blocks < 1:
    raise ValueError(f'model.r3gan_blocks={model.r3gan_blocks} must be >= 1.')
  nets = []
  cond = {'num_classes': num_classes}
  for net, width, extra in (
      (Generator, model.g_width, {**cond, 'cond_dim': model.cond_dim}),
      (Discriminator, model.d_width, cond),
  ):
    widths = tuple(layers.scale_width(w, width) for w in model.r3gan_widths)
    for w in _stage_widths(widths, size):
      if (w * model.r3gan_expansion) % model.r3gan_group_channels:
        raise ValueError(
            f'model.r3gan_group_channels={model.r3gan_group_channels} does '
            f'not divide the hidden width {w} x {model.r3gan_expansion} of '
            f'the {net.__name__} (model.r3gan_widths={model.r3gan_widths} at '
            f'width {width} / 64).'
        )
    nets.append(
        net(
            image_size=size,
            widths=widths,
            blocks_per_stage=model.r3gan_blocks,
            expansion=model.r3gan_expansion,
            group_channels=model.r3gan_group_channels,
            dtype=layers.parse_dtype(model.dtype),
            **extra,
        )
    )
  return nets[0], nets[1]
