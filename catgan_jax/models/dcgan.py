"""DCGAN (Radford et al. 2015) generator and discriminator, 16 to 256 px.

At 64 px with g_width = d_width = 64, z_dim = 100, kernel_size 4 and
norm='batch' this is the PyTorch DCGAN recipe layer for layer (same
parameter counts; see tests/models_test.py):

  G: z -> Dense 4x4x(8w) -> BN, ReLU -> [ConvT stride 2 -> BN, ReLU] x 3
     (4w, 2w, w channels) -> ConvT stride 2 to 3 channels -> tanh.
  D: Conv stride 2 (w) -> LReLU(0.2) -> [Conv stride 2 -> BN, LReLU] x 3
     (2w, 4w, 8w) -> Conv 4x4 valid to 1 logit.

PyTorch's first ``ConvTranspose2d(nz, 8w, 4, 1, 0)`` on a 1x1 input is the
same linear map as the Dense to 4x4x(8w) used here. Other sizes keep the
4x4 base and use log2(size / 4) up/down blocks, with channels doubling at
each halving of the resolution: the 4x4 base has w * size / 8 channels
(16w at 128 px, 32w at 256 px), as the DCGAN paper's progression does;
lower g_width/d_width when that is too large.

norm='batch' follows PyTorch DCGAN exactly (no biases anywhere, N(0, 0.02)
weights, BN scale N(1, 0.02)). norm='selu' is the 128 px recipe that
converged where BN + ReLU did not: SELU activations, LeCun-normal weights
by default, no normalisation. norm='none' keeps ReLU / LeakyReLU without
normalisation. Without BatchNorm every layer has a bias unless
model.use_bias=False; model.kernel_init='dcgan_normal' keeps N(0, 0.02)
weights with any norm (the cat-experiment code's SELU networks use both:
bias-free layers and N(0, 0.02), Deep-learning-with-cats DCGAN.py).
spectral_norm=True normalises every D layer and, with norm='batch',
removes D's BatchNorm (keeping the bias-free layers), as the
relativistic-GAN code's ``--spectral`` does. Stride-2 layers use 'SAME'
padding (PyTorch's padding=1 for kernel 4; the TF convention for kernel 5).

Two variants, both off by default: model.base_size=2 starts G at 2x2 (a
Dense to 2x2 and one more stride-2 up layer) and ends D at 2x2 (one more
stride-2 layer, then a 2x2 valid convolution to the logit); the 2x2 stage
has twice the channels of the 4x4 one, as the doubling above continues.
model.g_leak > 0 puts LeakyReLU(g_leak) in every hidden G layer instead of
ReLU (D's slope is 0.2).

Class-conditional (data.num_classes > 0, see models/conditioning.py): G
takes labels y by model.g_cond ('concat': a class embedding of
model.cond_dim concatenated to z; 'cbn': BigGAN's conditional BatchNorm from
a shared class embedding, norm='batch' only), D by model.d_cond
('projection': Miyato and Koyama's inner product of a class embedding with
D's last feature map summed over positions, added to the logit). An
unconditional network has exactly the parameters it always had.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from catgan_jax.models import conditioning
from catgan_jax.models import layers

NAME = 'dcgan'
SUPPORTED_SIZES = (16, 32, 64, 128, 256)
LEAK = 0.2
# model.base_size: the side of G's first and D's last feature map.
BASE_SIZES = (2, 4)


# model.kernel_init names; '' picks LeCun-normal for SELU, else N(0, 0.02).
KERNEL_INITS = {
    'dcgan_normal': layers.dcgan_kernel_init,
    'lecun_normal': layers.selu_kernel_init,
}


def _kernel_init(norm: str, name: str = '') -> layers.Initializer:
  if name:
    return KERNEL_INITS[name]
  return layers.selu_kernel_init if norm == 'selu' else layers.dcgan_kernel_init


def _use_bias(norm: str, use_bias: bool | None) -> bool:
  # Default: a bias wherever no BatchNorm follows (BN's offset replaces it).
  return norm != 'batch' if use_bias is None else use_bias


class Generator(nn.Module):
  """DCGAN generator: z [B, z_dim] -> images [B, S, S, 3] in [-1, 1].

  Attributes:
    image_size: side S of the output images (16 * 2^k, up to 256).
    width: channels of the last hidden layer (ngf).
    kernel_size: kernel size of the transposed convolutions.
    norm: 'batch', 'none' or 'selu'.
    dtype: compute dtype; parameters stay float32, outputs are float32.
    kernel_init: a key of KERNEL_INITS, or '' for the norm's default.
    use_bias: biases in every layer; None = wherever no BatchNorm follows.
    base_size: side of the first feature map (4, or 2 for a 2x2 stage).
    leak: negative slope of the hidden activations; 0 = ReLU.
    num_classes: classes of the labels y (0: unconditional).
    cond: how y enters ('concat' or 'cbn'; see models/conditioning.py).
    cond_dim: size of the class embedding.
  """

  image_size: int = 64
  width: int = 64
  kernel_size: int = 4
  norm: str = 'batch'
  dtype: layers.Dtype = jnp.float32
  kernel_init: str = ''
  use_bias: bool | None = None
  base_size: int = 4
  leak: float = 0.0
  num_classes: int = 0
  cond: str = ''
  cond_dim: int = 128

  @nn.compact
  def __call__(
      self, z: jax.Array, train: bool, y: jax.Array | None = None
  ) -> jax.Array:
    """Generates images from latent vectors (of classes `y`, if conditional)."""
    base = self.base_size
    embedding = None
    if self.num_classes:
      y = conditioning.labels_or_cycle(y, z.shape[0], self.num_classes)
      embedding = nn.Embed(
          self.num_classes, self.cond_dim, name='class_embedding'
      )(y)
      if self.cond == 'concat':
        z = jnp.concatenate([z, embedding.astype(z.dtype)], axis=-1)

    def normalize(x):
      if self.cond == 'cbn':
        return conditioning.ConditionalBatchNorm(dtype=self.dtype)(
            x, embedding, train
        )
      return layers.normalize(
          x, self.norm, train, self.dtype, layers.dcgan_scale_init
      )

    num_up = layers.num_doublings(self.image_size, base)
    # Channels halve at each doubling of the resolution, ending at width.
    widths = [self.width * 2 ** (num_up - 1 - i) for i in range(num_up)]
    use_bias = _use_bias(self.norm, self.use_bias)
    kernel_init = _kernel_init(self.norm, self.kernel_init)

    # None keeps nn.relu itself (not a LeakyReLU of slope 0).
    slope = self.leak or None

    x = nn.Dense(
        base * base * widths[0],
        use_bias=use_bias,
        kernel_init=kernel_init,
        dtype=self.dtype,
    )(z)
    x = x.reshape(z.shape[0], base, base, widths[0])
    x = normalize(x)
    x = layers.activate(x, self.norm, slope)
    for features in widths[1:]:
      x = layers.ConvTranspose2x(
          features,
          self.kernel_size,
          use_bias=use_bias,
          kernel_init=kernel_init,
          dtype=self.dtype,
      )(x)
      x = normalize(x)
      x = layers.activate(x, self.norm, slope)
    x = layers.ConvTranspose2x(
        3,
        self.kernel_size,
        use_bias=use_bias,
        kernel_init=kernel_init,
        dtype=self.dtype,
    )(x)
    return jnp.tanh(x).astype(jnp.float32)


class Discriminator(nn.Module):
  """DCGAN discriminator: images [B, S, S, 3] -> raw logits [B].

  Attributes:
    image_size: side S of the input images (16 * 2^k, up to 256).
    width: channels of the first layer (ndf).
    kernel_size: kernel size of the stride-2 convolutions.
    norm: 'batch', 'layer', 'none' or 'selu'.
    spectral_norm: spectrally normalise every layer (PyTorch's
      spectral_norm: raw weights stored); a 'batch' discriminator then has
      no BatchNorm (`layers.sn_feature_norm`).
    dtype: compute dtype; parameters stay float32, logits are float32.
    kernel_init: a key of KERNEL_INITS, or '' for the norm's default.
    use_bias: biases in every layer; None = wherever no BatchNorm follows.
    base_size: side of the last feature map (4, or 2 for a 2x2 stage).
    num_classes: classes of the labels y (0: unconditional).
    cond: how y enters ('projection'; see models/conditioning.py).
  """

  image_size: int = 64
  width: int = 64
  kernel_size: int = 4
  norm: str = 'batch'
  spectral_norm: bool = False
  dtype: layers.Dtype = jnp.float32
  kernel_init: str = ''
  use_bias: bool | None = None
  base_size: int = 4
  num_classes: int = 0
  cond: str = ''

  @nn.compact
  def __call__(
      self, x: jax.Array, train: bool, y: jax.Array | None = None
  ) -> jax.Array:
    """Scores images (as of classes `y`, if conditional); larger means 'real'."""
    # With spectral norm, no BatchNorm (it would undo SN; see layers).
    feature_norm = layers.sn_feature_norm(self.norm, self.spectral_norm)
    base = self.base_size
    num_down = layers.num_doublings(self.image_size, base)
    widths = [self.width * 2**i for i in range(num_down)]
    use_bias = _use_bias(self.norm, self.use_bias)
    kernel_init = _kernel_init(self.norm, self.kernel_init)
    k = self.kernel_size

    for i, features in enumerate(widths):
      conv = nn.Conv(
          features,
          (k, k),
          strides=(2, 2),
          padding='SAME',
          use_bias=use_bias,
          kernel_init=kernel_init,
          dtype=self.dtype,
          conv_general_dilated=layers.conv_general_dilated,
      )
      x = layers.d_stage(
          x,
          conv,
          i,
          feature_norm=feature_norm,
          norm=self.norm,
          leak=LEAK,
          spectral_norm=self.spectral_norm,
          train=train,
          dtype=self.dtype,
          scale_init=layers.dcgan_scale_init,
      )
    # A valid convolution over the whole base map (a dense layer) to one
    # logit.
    head = nn.Conv(
        1,
        (base, base),
        padding='VALID',
        use_bias=use_bias,
        kernel_init=kernel_init,
        dtype=self.dtype,
    )
    features = x
    x = layers.apply_layer(head, x, self.spectral_norm, train)
    logits = x.reshape(x.shape[0]).astype(jnp.float32)
    if self.cond == 'projection':
      y = conditioning.labels_or_cycle(y, x.shape[0], self.num_classes)
      logits = logits + conditioning.Projection(
          self.num_classes, name='projection'
      )(features, y)
    return logits


def build(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for config.data.image_size."""
  layers.check_image_size(NAME, config.data.image_size, SUPPORTED_SIZES)
  d_norm = layers.resolve_d_norm(
      config.model.norm, config.model.d_norm, config.model.spectral_norm
  )
  dtype = layers.parse_dtype(config.model.dtype)
  init = config.model.get('kernel_init', '')
  layers.check_choice('model.kernel_init', init, ('',) + tuple(KERNEL_INITS))
  use_bias = config.model.get('use_bias', None)
  # Configs saved before these fields existed read as the plain DCGAN.
  base_size = config.model.get('base_size', 4)
  g_leak = config.model.get('g_leak', 0.0)
  if base_size not in BASE_SIZES:
    raise ValueError(
        f'model.base_size={base_size!r} is not supported '
        f'(valid: {", ".join(map(str, BASE_SIZES))})'
    )
  if not 0.0 <= g_leak < 1.0:
    raise ValueError(f'model.g_leak={g_leak!r} must be in [0, 1)')
  num_classes = config.data.get('num_classes', 0)
  g_cond = config.model.get('g_cond', '')
  d_cond = config.model.get('d_cond', '')
  conditioning.check(num_classes, g_cond, d_cond)
  if g_cond == 'cbn' and config.model.norm != 'batch':
    raise ValueError(
        f"model.g_cond='cbn' conditions G's BatchNorm, but "
        f'model.norm={config.model.norm!r} has none; use model.g_cond=concat'
    )
  if g_leak and config.model.norm == 'selu':
    raise ValueError(
        f'model.g_leak={g_leak!r} has no effect with '
        "model.norm='selu' (SELU activations); use 0"
    )
  generator = Generator(
      image_size=config.data.image_size,
      width=config.model.g_width,
      kernel_size=config.model.kernel_size,
      norm=config.model.norm,
      dtype=dtype,
      kernel_init=init,
      use_bias=use_bias,
      base_size=base_size,
      leak=g_leak,
      num_classes=num_classes,
      cond=g_cond,
      cond_dim=config.model.get('cond_dim', 128),
  )
  discriminator = Discriminator(
      image_size=config.data.image_size,
      width=config.model.d_width,
      kernel_size=config.model.kernel_size,
      norm=d_norm,
      spectral_norm=config.model.spectral_norm,
      dtype=dtype,
      kernel_init=init,
      use_bias=use_bias,
      base_size=base_size,
      num_classes=num_classes,
      cond=d_cond,
  )
  return generator, discriminator
