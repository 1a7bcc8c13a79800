"""FastGAN's generator (Liu et al., ICLR 2021), as Projected GAN uses it.

A port of ``pg_modules/networks_fastgan.py`` (``FastganSynthesis``) and the
blocks it uses from ``pg_modules/blocks.py`` of Projected GAN
(github.com/autonomousvision/projected-gan), which is FastGAN's
``models.py`` (github.com/odegeasslbc/FastGAN-pytorch) modified by its
authors:

  z [B, z_dim] -> normalise its second moment (PGGAN's pixel norm on z)
  -> InitLayer: 4x4 transposed conv of the 1x1 z, BatchNorm, GLU -> 4x4
  -> UpBlock per doubling: nearest 2x upsample, 3x3 conv, [noise injection],
     BatchNorm, GLU, and in the big block a second 3x3 conv, noise, BN, GLU
  -> skip-layer excitation (SLE) at 64, 128 and 256 px: the 64 px map is
     scaled per channel by a gate computed from the 4x4 map (128 from 8,
     256 from 16): adaptive 4x4 average pool, 4x4 valid conv, Swish,
     1x1 conv, sigmoid
  -> 3x3 conv with bias to RGB.

Every convolution is spectrally normalised (``blocks.conv2d``), as in the
reference, and has no bias except the last. GLU halves the channels: a
convolution producing 2C channels feeds ``x[:C] * sigmoid(x[C:])``.
`lite=True` is the reference's ``fastgan_lite``: single-conv UpBlocks
(``UpBlockSmall``) without noise; the widths are the same. Widths per
resolution are the reference's ``nfc_multi`` times ``ngf`` (config
``model.g_width``; the reference's default 128): 16 at 2 and 4 px, 8, 4, 2,
2, 1, 0.5 at 8 ... 256 px.

Initialisation is PyTorch's default, which the reference keeps:
convolutions ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (for the transposed
convolution torch's fan_in is out channels x 16), BatchNorm scale 1, offset
0, noise weights 0.

Deliberate differences:
  * 64 px: the reference's synthesis sets its output map only from 128 px
    up (``feat_last``); here a 64 px generator ends at the SLE-gated 64 px
    map, and builds no 128 px stage.
  * Noise injection draws from the ``'noise'`` PRNG stream when the caller
    gives one (the train step does); without one (sampling, FID) the noise
    is zero. The reference draws fresh noise in every call, sampling too.
  * The output is linear when training, as the reference's (no tanh), and
    clipped to [-1, 1] with train=False, like `r3gan`'s.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from catgan_jax.models import layers
from catgan_jax.models import projected

NAMES = ('fastgan', 'fastgan_lite')
# The reference's sizes are 64 (here, see the module doc) to 256 px; 16 and
# 32 px (no SLE) let the tests train it at tiny sizes.
SUPPORTED_SIZES = (16, 32, 64, 128, 256)
# model.discriminator choices of these generators.
DISCRIMINATORS = (projected.NAME,)
# The reference's channel multipliers of ngf per resolution (nfc_multi).
_WIDTH_MULTIPLIERS = {
    2: 16,
    4: 16,
    8: 8,
    16: 4,
    32: 2,
    64: 2,
    128: 1,
    256: 0.5,
}
# PyTorch's default weight initialiser of Conv2d: kaiming_uniform(a=sqrt(5)),
# i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_conv_init = nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')
# The same for ConvTranspose2d, whose torch fan_in is out channels x k x k.
_torch_conv_transpose_init = nn.initializers.variance_scaling(
    1 / 3, 'fan_out', 'uniform'
)


def torch_bias_init(fan_in: int):
  """PyTorch's default bias initialiser: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = fan_in**-0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def widths(ngf: int) -> dict[int, int]:
  """Channels per resolution: the reference's ``nfc`` for this ngf."""
  return {k: int(v * ngf) for k, v in _WIDTH_MULTIPLIERS.items()}


def glu(x: jax.Array) -> jax.Array:
  """Gated linear unit over channels: ``x[..., :C] * sigmoid(x[..., C:])``."""
  c = x.shape[-1] // 2
  return x[..., :c] * jax.nn.sigmoid(x[..., c:])


def upsample_nearest_2x(x: jax.Array) -> jax.Array:
  """``nn.Upsample(scale_factor=2, mode='nearest')`` on NHWC."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """``nn.AdaptiveAvgPool2d(size)`` for maps whose side is a multiple of size."""
  h = x.shape[1]
  if h == size:
    return x
  if h % size:
    raise ValueError(f'adaptive_avg_pool: side {h} is not a multiple of {size}')
  k = h // size
  return nn.avg_pool(x, (k, k), strides=(k, k))


def _conv(features: int, kernel: int, fan_in: int = 0) -> nn.Conv:
  """A 'SAME' (or 1x1/4x4 'VALID') conv; with a bias when fan_in > 0."""
  return nn.Conv(
      features,
      (kernel, kernel),
      padding='SAME' if kernel == 3 else 'VALID',
      use_bias=fan_in > 0,
      kernel_init=torch_conv_init,
      bias_init=torch_bias_init(max(fan_in, 1)),
      conv_general_dilated=layers.conv_general_dilated,
  )


def _batch_norm(x: jax.Array, train: bool) -> jax.Array:
  return layers.normalize(x, 'batch', train, jnp.float32)


class NoiseInjection(nn.Module):
  """``x + weight * noise``, one noise map per image, weight initially 0."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    weight = self.param('weight', nn.initializers.zeros, (1,))
    if not self.has_rng('noise'):
      return x  # Zero noise without a 'noise' stream (see the module doc).
    noise = jax.random.normal(self.make_rng('noise'), x.shape[:3] + (1,))
    return x + weight * noise


class UpBlock(nn.Module):
  """2x upsample and 1 (lite) or 2 (big, with noise) conv-BN-GLU layers."""

  features: int
  lite: bool

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = upsample_nearest_2x(x)
    for _ in range(1 if self.lite else 2):
      x = layers.apply_layer(_conv(2 * self.features, 3), x, True, train)
      if not self.lite:
        x = NoiseInjection()(x)
      x = glu(_batch_norm(x, train))
    return x


class SLEBlock(nn.Module):
  """Skip-layer excitation: `big` gated per channel by a summary of `small`.

  The reference's ``SEBlock``: adaptive 4x4 average pool of `small`, 4x4
  valid conv to big's channels, Swish, 1x1 conv, sigmoid, times `big`.
  """

  @nn.compact
  def __call__(
      self, small: jax.Array, big: jax.Array, train: bool
  ) -> jax.Array:
    c = big.shape[-1]
    gate = adaptive_avg_pool(small, 4)
    gate = layers.apply_layer(_conv(c, 4), gate, True, train)
    gate = nn.swish(gate)
    gate = layers.apply_layer(_conv(c, 1), gate, True, train)
    return big * jax.nn.sigmoid(gate)


class Generator(nn.Module):
  """FastGAN generator: z [B, z_dim] -> images [B, S, S, 3].

  Attributes:
    image_size: side S of the images (64, 128 or 256).
    ngf: the reference's ngf (channel unit).
    lite: the reference's ``fastgan_lite`` (single-conv blocks, no noise).
  """

  image_size: int = 256
  ngf: int = 128
  lite: bool = False

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    """Generates images; linear when training, clipped to [-1, 1] otherwise."""
    nfc = widths(self.ngf)
    z = z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=1, keepdims=True) + 1e-8)
    init = nn.ConvTranspose(
        2 * nfc[2],
        (4, 4),
        padding='VALID',
        use_bias=False,
        kernel_init=_torch_conv_transpose_init,
    )
    x = layers.apply_layer(init, z[:, None, None, :], True, train)
    feats = {4: glu(_batch_norm(x, train))}
    size = 4
    while size < self.image_size:
      x = UpBlock(nfc[2 * size], self.lite, name=f'feat_{2 * size}')(
          feats[size], train
      )
      size *= 2
      # SLE: 64 px gated from 4, 128 from 8, 256 from 16.
      if size >= 64:
        x = SLEBlock(name=f'se_{size}')(feats[size // 16], x, train)
      feats[size] = x
    last = feats[self.image_size]
    to_rgb = _conv(3, 3, fan_in=9 * last.shape[-1])
    x = layers.apply_layer(to_rgb, last, True, train)
    return x if train else jnp.clip(x, -1.0, 1.0)


def build(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(FastGAN generator, model.discriminator) for config.data.image_size.

  model.name 'fastgan_lite' builds the lite generator; model.g_width is the
  reference's ngf.
  """
  model = config.model
  size = config.data.image_size
  layers.check_image_size(model.name, size, SUPPORTED_SIZES)
  if model.dtype != 'float32':
    raise ValueError(
        f'model.dtype={model.dtype!r} is not supported by '
        f'model.name={model.name!r} (float32 only)'
    )
  layers.check_choice(
      'model.discriminator', model.discriminator, DISCRIMINATORS
  )
  generator = Generator(
      image_size=size, ngf=model.g_width, lite=model.name == 'fastgan_lite'
  )
  return generator, projected.build(config)
