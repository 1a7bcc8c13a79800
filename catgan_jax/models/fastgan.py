"""FastGAN (Liu et al., ICLR 2021): the generator as Projected GAN uses it,
and FastGAN's own self-supervised discriminator (`Discriminator`).

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

Class conditioning (data.num_classes > 0, model.g_cond='cbn') is the
reference's ``FastganSynthesisCond`` (its ``Generator(cond=1)``): the
label's embedding of z's size (``nn.Embedding``, N(0, 1)) is not fed to
the InitLayer or the SLE gates; every UpBlock's BatchNorm becomes a
``CCBN`` (BigGAN's conditional BatchNorm: no affine of its own, gain
``1 + W_g e`` and bias ``W_b e`` by spectrally normalised Linears), and the
big UpBlock's two layers share one noise weight, as the reference's
``UpBlockBigCond``. An unconditional generator is unchanged.

The discriminator (model.discriminator='fastgan') is FastGAN's own, from
its ``models.py`` (``Discriminator``, ``DownBlock``, ``DownBlockComp``,
``SimpleDecoder``) and ``train.py`` (``train_d``); see `Discriminator`.
Deliberate differences there:
  * The reconstruction loss: the reference's LPIPS (VGG with learned
    weights) cannot be had offline; `feature_distance` is LPIPS's distance
    without learned weights through the frozen ImageNet MobileNetV2
    (model.feature_path, kept in the ``frozen`` collection like the
    projected discriminator's). The reference adds no pixel term.
  * The reference's discriminator is built for 256 px and up. Here its
    blocks follow the map sides: DownBlockComps from the image's side down
    to 8 px with the reference's channels for each side, SLE from the map
    of 8x the side when there is one, the small branch at half the side
    (at least 16 px), and the reconstructions at the image's side up to the
    reference's 128 px (which it always decodes to, comparing with the
    nearest-resized image); at 256 px all of it is the reference's.
  * The small branch sees a nearest-resized copy of every image; the
    reference gives it the generator's own 128 px output for the fakes
    (its models.py generator's ``to_128``), which this generator lacks.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from catgan_jax.evaluation import mobilenet_v2
from catgan_jax.models import conditioning
from catgan_jax.models import layers
from catgan_jax.models import projected

NAMES = ('fastgan', 'fastgan_lite')
# The reference's sizes are 64 (here, see the module doc) to 256 px; 16 and
# 32 px (no SLE) let the tests train it at tiny sizes.
SUPPORTED_SIZES = (16, 32, 64, 128, 256)
# model.discriminator of FastGAN's own discriminator (`Discriminator`).
D_NAME = 'fastgan'
# model.discriminator choices of these generators.
DISCRIMINATORS = (projected.NAME, D_NAME)
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


def _conv(
    features: int,
    kernel: int,
    fan_in: int = 0,
    kernel_init: nn.initializers.Initializer = torch_conv_init,
) -> nn.Conv:
  """A 'SAME' (or 1x1/4x4 'VALID') conv; with a bias when fan_in > 0."""
  return nn.Conv(
      features,
      (kernel, kernel),
      padding='SAME' if kernel == 3 else 'VALID',
      use_bias=fan_in > 0,
      kernel_init=kernel_init,
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
  """2x upsample and 1 (lite) or 2 (big, with noise) conv-BN-GLU layers.

  Given a class embedding `e`, the reference's ``UpBlockSmallCond`` /
  ``UpBlockBigCond``: every BatchNorm is its ``CCBN`` of `e`, and the big
  block's two layers share one noise weight (one ``NoiseInjection``).
  """

  features: int
  lite: bool

  @nn.compact
  def __call__(
      self, x: jax.Array, train: bool, e: jax.Array | None = None
  ) -> jax.Array:
    x = upsample_nearest_2x(x)
    shared_noise = NoiseInjection() if e is not None and not self.lite else None
    for _ in range(1 if self.lite else 2):
      x = layers.apply_layer(_conv(2 * self.features, 3), x, True, train)
      if not self.lite:
        x = (NoiseInjection() if shared_noise is None else shared_noise)(x)
      x = glu(_batch_norm(x, train) if e is None else _ccbn(x, e, train))
    return x


def _ccbn(x: jax.Array, e: jax.Array, train: bool) -> jax.Array:
  """The reference's ``CCBN``: BatchNorm with gain and bias from `e` by
  spectrally normalised Linears (torch's default initialisation)."""
  return conditioning.ConditionalBatchNorm(
      spectral_norm=True,
      kernel_init=torch_conv_init,
      bias_init=torch_bias_init(e.shape[-1]),
  )(x, e, train)


class SLEBlock(nn.Module):
  """Skip-layer excitation: `big` gated per channel by a summary of `small`.

  The reference's ``SEBlock``: adaptive 4x4 average pool of `small`, 4x4
  valid conv to big's channels, Swish, 1x1 conv, sigmoid, times `big`.
  """

  kernel_init: nn.initializers.Initializer = torch_conv_init

  @nn.compact
  def __call__(
      self, small: jax.Array, big: jax.Array, train: bool
  ) -> jax.Array:
    c = big.shape[-1]
    gate = adaptive_avg_pool(small, 4)
    conv = lambda k: _conv(c, k, kernel_init=self.kernel_init)
    gate = layers.apply_layer(conv(4), gate, True, train)
    gate = nn.swish(gate)
    gate = layers.apply_layer(conv(1), gate, True, train)
    return big * jax.nn.sigmoid(gate)


class Generator(nn.Module):
  """FastGAN generator: z [B, z_dim] -> images [B, S, S, 3].

  Attributes:
    image_size: side S of the images (64, 128 or 256).
    ngf: the reference's ngf (channel unit).
    lite: the reference's ``fastgan_lite`` (single-conv blocks, no noise).
    num_classes: classes of the labels y (0: unconditional); conditional,
      it is the reference's ``FastganSynthesisCond`` (see `UpBlock`): a
      class embedding of z's size (``nn.Embedding``, N(0, 1)) conditions
      every UpBlock's BatchNorms.
  """

  image_size: int = 256
  ngf: int = 128
  lite: bool = False
  num_classes: int = 0

  @nn.compact
  def __call__(
      self, z: jax.Array, train: bool, y: jax.Array | None = None
  ) -> jax.Array:
    """Generates images (of classes `y`, if conditional); linear when
    training, clipped to [-1, 1] otherwise."""
    nfc = widths(self.ngf)
    e = None
    if self.num_classes:
      y = conditioning.labels_or_cycle(y, z.shape[0], self.num_classes)
      embed = nn.Embed(
          self.num_classes,
          z.shape[-1],
          embedding_init=nn.initializers.normal(1.0),
          name='embed',
      )
      e = embed(y)
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
          feats[size], train, e
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


# --- FastGAN's own discriminator ---------------------------------------------
#
# models.py's Discriminator, DownBlock, DownBlockComp and SimpleDecoder, as
# train.py's train_d uses them. Its convolutions are spectrally normalised
# without biases; every conv and BatchNorm is initialised as train.py's
# weights_init does: kernels N(0, 0.02), BatchNorm scales N(1, 0.02).

# The reference D's channel multipliers of ndf (its nfc_multi); a map of
# side m has nfc[2 m] channels in the big branch and nfc[4 m] in the small.
_D_WIDTH_MULTIPLIERS = {
    4: 16,
    8: 16,
    16: 8,
    32: 4,
    64: 2,
    128: 1,
    256: 0.5,
    512: 0.25,
}
# SimpleDecoder's channels per output side (its nfc over a base of 32).
_DECODER_CHANNELS = {16: 128, 32: 64, 64: 64, 128: 32}
# Side of the maps the logits and the decoders start from.
_D_END_SIZE = 8
# The largest reconstruction (the reference always decodes to 128 px).
_MAX_RECONSTRUCTION = 128
_d_kernel_init = nn.initializers.normal(0.02)


def resize_nearest(x: jax.Array, size: int) -> jax.Array:
  """``F.interpolate(x, size)`` (torch's default 'nearest') on NHWC."""
  h = x.shape[1]
  if h == size:
    return x
  index = (np.arange(size) * h) // size
  return x[:, index][:, :, index]


def feature_distance(
    params: dict, images: jax.Array, targets: jax.Array
) -> jax.Array:
  """LPIPS's distance through the frozen MobileNetV2's four stages, [B].

  LPIPS (Zhang et al. 2018) without its learned channel weights (its
  ``lpips=False`` form): at each map, unit-normalise the feature vector of
  every position, sum the squared differences over channels, average over
  positions; sum over the maps.
  """
  maps = mobilenet_v2.MobileNetV2Stages().apply(
      {'params': params}, jnp.concatenate([images, targets])
  )
  return lpips_of_maps(*zip(*(jnp.split(m, 2) for m in maps)))


def lpips_of_maps(
    maps_a: Sequence[jax.Array], maps_b: Sequence[jax.Array]
) -> jax.Array:
  """LPIPS's sum over maps of unit-normalised squared differences, [B]."""

  def unit(m):
    # LPIPS's normalize_tensor: x / (||x|| + 1e-10); the 1e-20 under the
    # root keeps the gradient finite at an all-zero vector.
    norm = jnp.sqrt(jnp.sum(jnp.square(m), -1, keepdims=True) + 1e-20)
    return m / (norm + 1e-10)

  total = 0.0
  for a, b in zip(maps_a, maps_b):
    diff = jnp.sum(jnp.square(unit(a) - unit(b)), -1)
    total = total + jnp.mean(diff, axis=(1, 2))
  return total


def quadrant(x: jax.Array, part: jax.Array | int) -> jax.Array:
  """Quadrant `part` of NHWC maps: 0 top left, 1 top right, 2 bottom left,
  3 bottom right (train.py's crop_image_by_part)."""
  n, h, w, c = x.shape
  row, col = jnp.divmod(jnp.asarray(part), 2)
  return jax.lax.dynamic_slice(
      x, (0, row * (h // 2), col * (w // 2), 0), (n, h // 2, w // 2, c)
  )


def _d_conv(
    x: jax.Array, features: int, kernel: int, stride: int, train: bool
) -> jax.Array:
  """The reference's ``conv2d``: spectrally normalised, no bias."""
  if stride == 2:
    padding = ((1, 1), (1, 1))
  else:
    padding = 'SAME' if kernel == 3 else 'VALID'
  conv = nn.Conv(
      features,
      (kernel, kernel),
      strides=stride,
      padding=padding,
      use_bias=False,
      kernel_init=_d_kernel_init,
      conv_general_dilated=layers.conv_general_dilated,
  )
  return layers.apply_layer(conv, x, True, train)


def _d_batch_norm(x: jax.Array, train: bool) -> jax.Array:
  return layers.normalize(
      x, 'batch', train, jnp.float32, scale_init=layers.dcgan_scale_init
  )


class DownBlock(nn.Module):
  """4x4 stride-2 conv, BatchNorm, LeakyReLU 0.2."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = _d_batch_norm(_d_conv(x, self.features, 4, 2, train), train)
    return nn.leaky_relu(x, 0.2)


class DownBlockComp(nn.Module):
  """The mean of DownBlock + 3x3 conv-BN-LReLU and a pooled 1x1 shortcut."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    main = DownBlock(self.features)(x, train)
    main = _d_batch_norm(_d_conv(main, self.features, 3, 1, train), train)
    main = nn.leaky_relu(main, 0.2)
    direct = nn.avg_pool(x, (2, 2), strides=(2, 2))
    direct = _d_batch_norm(_d_conv(direct, self.features, 1, 1, train), train)
    return (main + nn.leaky_relu(direct, 0.2)) / 2


class SimpleDecoder(nn.Module):
  """An 8x8 map -> an image of side `size` in [-1, 1].

  The reference's SimpleDecoder: (adaptive 8x8 average pool,) per doubling
  nearest 2x upsample, 3x3 conv, BatchNorm, GLU; a 3x3 conv to RGB; tanh.

  Attributes:
    size: side of the image (128 in the reference).
    width: ndf; the reference's channels are for 64.
  """

  size: int = _MAX_RECONSTRUCTION
  width: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = adaptive_avg_pool(x, _D_END_SIZE)
    side = _D_END_SIZE
    while side < self.size:
      side *= 2
      c = layers.scale_width(_DECODER_CHANNELS[side], self.width)
      x = _d_conv(upsample_nearest_2x(x), 2 * c, 3, 1, train)
      x = glu(_d_batch_norm(x, train))
    return jnp.tanh(_d_conv(x, 3, 3, 1, train))


def _d_width(ndf: int, side: int) -> int:
  return max(1, int(_D_WIDTH_MULTIPLIERS[side] * ndf))


class Discriminator(nn.Module):
  """FastGAN's self-supervised discriminator: images -> patch logits.

  Two branches (models.py's Discriminator):
    big: the image at its side S: 3x3 conv, LeakyReLU (``down_from_big`` of
      the 256 px model), DownBlockComps down to 8 px; the map of side m is
      gated (SLE) by the one of side 8 m when there is one (the 256 px
      model's se_2_16, se_4_32, se_8_64); ``rf_big``: 1x1 conv, BN, LReLU,
      4x4 valid conv -> 5x5 logits.
    small: the image resized (nearest) to S / 2 (128 at 256 px; at least
      16): 4x4 stride-2 conv, LeakyReLU, DownBlocks down to 8 px;
      ``rf_small``: 4x4 valid conv -> 5x5 logits.
  The logits are concatenated, [B, 50].

  With `part` (train_d's real pass), it also returns the reconstruction
  loss: three decoders rebuild the whole image from the big branch's 8 px
  map, again from the small branch's, and quadrant `part` (0 top left, 1
  top right, 2 bottom left, 3 bottom right) of the image from that
  quadrant of the big branch's 16 px map; each is compared with the
  (nearest-resized) input, or its quadrant, by `feature_distance`, summed
  over the batch as the reference's ``percept(...).sum()``.

  Attributes:
    ndf: the reference's ndf (64), model.d_width.
    feature_path: the MobileNetV2 TFLite file of the distance ('' only with
      random_features).
    random_features: a randomly initialised feature network (tests only).
  """

  ndf: int = 64
  feature_path: str = ''
  random_features: bool = False
  # The train step's flag: pass `part` on the reals of D's loss and add the
  # reconstruction loss (step.Networks.d_reconstructs).
  RECONSTRUCTS = True

  def _feature_params(self) -> dict:
    if self.random_features:
      dummy = jnp.zeros((1, 32, 32, 3))
      key = self.make_rng('params')
      return mobilenet_v2.MobileNetV2Stages().init(key, dummy)['params']
    return jax.tree.map(
        jnp.asarray, projected.load_feature_params(self.feature_path)
    )

  @nn.compact
  def __call__(
      self, x: jax.Array, train: bool, part: jax.Array | None = None
  ) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Logits [B, 50]; with `part`, (logits, reconstruction loss)."""
    features = self.variable(
        projected.FROZEN, 'features', self._feature_params
    ).value
    side = x.shape[1]
    lrelu = lambda v: nn.leaky_relu(v, 0.2)
    big = {side: lrelu(_d_conv(x, _d_width(self.ndf, 2 * side), 3, 1, train))}
    h = big[side]
    while side > _D_END_SIZE:
      side //= 2
      h = DownBlockComp(_d_width(self.ndf, 2 * side), name=f'down_{side}')(
          h, train
      )
      if 8 * side in big:
        h = SLEBlock(_d_kernel_init, name=f'se_{8 * side}_{side}')(
            big[8 * side], h, train
        )
      big[side] = h
    rf = _d_conv(h, _d_width(self.ndf, 4), 1, 1, train)
    rf_big = _d_conv(lrelu(_d_batch_norm(rf, train)), 1, 4, 1, train)

    small_side = max(x.shape[1] // 2, 16)
    s = resize_nearest(x, small_side)
    s = lrelu(_d_conv(s, _d_width(self.ndf, 2 * small_side), 4, 2, train))
    side = small_side // 2
    while side > _D_END_SIZE:
      side //= 2
      s = DownBlock(_d_width(self.ndf, 4 * side))(s, train)
    rf_small = _d_conv(s, 1, 4, 1, train)
    batch = x.shape[0]
    logits = jnp.concatenate(
        [rf_big.reshape(batch, -1), rf_small.reshape(batch, -1)], axis=1
    )
    if part is None and not self.is_initializing():
      return logits

    # train_d's reconstruction terms (at init, to create the decoders).
    size = min(x.shape[1], _MAX_RECONSTRUCTION)
    decoder = lambda name: SimpleDecoder(size, self.ndf, name=name)
    part_index = 0 if part is None else part
    images = jnp.concatenate(
        [
            decoder('decoder_big')(big[_D_END_SIZE], train),
            decoder('decoder_small')(s, train),
            decoder('decoder_part')(quadrant(big[16], part_index), train),
        ]
    )
    targets = jnp.concatenate(
        [
            resize_nearest(x, size),
            resize_nearest(x, size),
            resize_nearest(quadrant(x, part_index), size),
        ]
    )
    loss = jnp.sum(feature_distance(features, images, targets))
    return logits if part is None else (logits, loss)


def _check_conditioning(
    config: ml_collections.ConfigDict, num_classes: int
) -> None:
  """One-line errors for conditioning choices these networks do not have."""
  model = config.model
  g_cond, d_cond = model.get('g_cond', ''), model.get('d_cond', '')
  conditioning.check(num_classes, g_cond, d_cond)
  conditioning.check_reference_choices(
      model.name, g_cond, d_cond, 'cbn', 'projection'
  )
  if num_classes and model.discriminator != projected.NAME:
    raise ValueError(
        f'model.discriminator={model.discriminator!r} takes no labels: '
        f'data.num_classes={num_classes} needs {projected.NAME!r}'
    )


def build(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(FastGAN generator, model.discriminator) for config.data.image_size.

  model.name 'fastgan_lite' builds the lite generator; model.g_width is the
  reference's ngf. model.discriminator 'projected' is Projected GAN's,
  'fastgan' FastGAN's own (`Discriminator`; model.d_width is its ndf, and
  model.feature_path the network of its reconstruction loss).
  Class-conditional (data.num_classes > 0): model.g_cond='cbn' (the
  reference's CCBN) with the projected discriminator, model.d_cond=
  'projection' (its ``SingleDiscCond``); FastGAN's own takes no labels.
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
  num_classes = config.data.get('num_classes', 0)
  _check_conditioning(config, num_classes)
  generator = Generator(
      image_size=size,
      ngf=model.g_width,
      lite=model.name == 'fastgan_lite',
      num_classes=num_classes,
  )
  if model.discriminator == projected.NAME:
    return generator, projected.build(config)
  if not model.feature_random_init:
    projected.load_feature_params(model.feature_path)  # One-line errors.
  return generator, Discriminator(
      ndf=model.d_width,
      feature_path=model.feature_path,
      random_features=model.feature_random_init,
  )
