"""Projected GAN's discriminator (Sauer et al., NeurIPS 2021).

A port of ``pg_modules/discriminator.py`` (``ProjectedDiscriminator``,
``MultiScaleD``, ``SingleDisc``), ``pg_modules/projector.py``
(``F_RandomProj``) and the blocks they use from ``pg_modules/blocks.py``
(github.com/autonomousvision/projected-gan):

  images [B, S, S, 3] in [-1, 1] (already DiffAugment-ed by the train step,
  colour, translation and cutout on every pass, as the reference's D does)
  -> bilinear resize to interp_size when S is smaller (the reference's
     ``interp224``)
  -> frozen pretrained feature network: its maps at strides 4, 8, 16, 32
  -> CCM (proj_type >= 1): a fixed random 1x1 conv per map to cout, 2 cout,
     4 cout, 8 cout channels (``expand``; cout each otherwise)
  -> CSM (proj_type 2): from the coarsest map up, each map plus the one
     below it, 2x bilinear upsampling (align_corners=True) and a fixed random
     1x1 conv that halves the channels (``expand``; the finest keeps cout)
  -> one mini-discriminator per map (num_discs, from the finest): DownBlocks
     (spectrally normalised 4x4 stride-2 conv with bias, BatchNorm,
     LeakyReLU 0.2) down to 8 px, then a spectrally normalised 4x4 valid
     conv to one channel: patch logits
  -> all patch logits concatenated, [B, P].

The loss is the reference's ``ProjectedGANLoss``, the hinge loss over every
patch logit (`losses` 'hinge': mean relu(1 - D(real)) + mean relu(1 +
D(fake)) for D, -mean D(fake) for G), with no regulariser.

The feature network is the Flax MobileNetV2 port that also scores FID
(`evaluation.mobilenet_v2`, ImageNet weights from
``mobilenet_v2_1.0_224_quant.tflite``, config ``model.feature_path``): the
reference's EfficientNet-lite0 (timm ``tf_efficientnet_lite0``) cannot be
had offline, and MobileNetV2 is the closest network at hand: the same
inverted-residual family with depthwise convolutions and ImageNet training.
Its maps are taken at the same strides as the reference's
``_make_efficientnet`` (after MobileNetV2's 24-, 32-, 96- and 320-channel
stages; EfficientNet-lite0 gives 24, 40, 112 and 320). Because that network
also scores FID here, a run with this discriminator must be scored with
another network (`check_scorer`).

The feature network and the random projections are frozen: they live in
the ``frozen`` variable collection, which the GAN state keeps beside the
parameters (so a checkpoint holds them and a resumed run uses exactly the
same projections) but no optimiser sees. The projections are initialised
as PyTorch initialises the reference's ``nn.Conv2d``s (U(+-1/sqrt(fan_in))
for weights and biases), from the run's seed.

Deliberate differences:
  * The number of DownBlocks of a mini-discriminator follows its actual
    input size (down while the next power of two above it is > 8 px); the
    reference fixes the sizes as if the input were 256 px, which gives the
    same blocks at its 224 px input and none that fit at the smaller
    interp_size a CPU needs.
  * Widths: the reference's channels per size (512 at 4 and 8 px, 256, 128,
    64, 64, 32 at 16 ... 256 px) scale with model.d_width / 64.

Class conditioning (`num_classes` > 0, data.num_classes) is the
reference's ``SingleDiscCond`` in every
mini-discriminator (its ``MultiScaleD(cond=1)``): the last conv gives
``cmap_dim`` = 64 channels (spectrally normalised, no bias) instead of one,
the label's embedding (``nn.Embedding``, 128 entries, N(0, 1)) goes
through a Linear to 64 and LeakyReLU(0.2), and each patch logit is the
inner product of the two over the channels divided by sqrt(64). The
reference's table always has 1,000 rows (``MultiScaleD`` passes no c_dim);
here it has one per class, the rows a run uses. An unconditional
discriminator is unchanged. It trains with the conditional FastGAN
generators (model.g_cond='cbn', model.d_cond='projection'; `fastgan`).
"""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from catgan_jax.evaluation import features as features_lib
from catgan_jax.evaluation import mobilenet_v2
from catgan_jax.models import conditioning
from catgan_jax.models import layers

NAME = 'projected'
PROJ_TYPES = (0, 1, 2)
# The frozen feature network's name as a scorer (eval.features).
FEATURE_NETWORK = 'mobilenet_v2'
# The reference's mini-discriminator channels per (nominal) map size.
_CHANNELS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32}
_END_SIZE = 8
FROZEN = 'frozen'
# PyTorch's default Conv2d weight initialiser, U(-1/sqrt(fan_in), ...).
_torch_conv_init = nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')
# SingleDiscCond's class map channels and class embedding size.
CMAP_DIM = 64
EMBEDDING_DIM = 128


def _way_out() -> str:
  return (
      'set --config.model.feature_path=/path/to/'
      f'{features_lib.MOBILENET_V2_FILE} (the ImageNet MobileNetV2 TFLite '
      'file)'
  )


@functools.lru_cache(maxsize=2)
def _read_feature_params(path: str) -> dict:
  params = mobilenet_v2.load_tflite_params(path)
  params.pop('Conv_1')  # Only the four stages are used.
  return params


def load_feature_params(path: str) -> dict:
  """The feature network's weights from model.feature_path.

  Raises:
    ValueError: one line naming the field and the problem (no path, no
      file, not the MobileNetV2 TFLite file).
  """
  if not path:
    raise ValueError(
        "model.feature_path='': the projected discriminator needs its "
        f"feature network's weights ({features_lib.MOBILENET_V2_FILE}); "
        + _way_out()
    )
  if not os.path.isfile(path):
    raise ValueError(
        f'model.feature_path={path!r} does not exist; ' + _way_out()
    )
  try:
    return _read_feature_params(path)
  except Exception as e:  # pylint: disable=broad-except
    # A file of something else fails in whatever reads it first.
    first = str(e).splitlines()[0] if str(e) else ''
    raise ValueError(
        f'model.feature_path={path!r} is not a MobileNetV2 weights file '
        f'({type(e).__name__}: {first}); ' + _way_out()
    ) from None


def _uniform(bound: float):
  def init(key, shape):
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)

  return init


def upsample_bilinear_2x(x: jax.Array) -> jax.Array:
  """2x bilinear upsampling with align_corners=True (torch's, on NHWC).

  Output pixel i samples input position i (n - 1) / (2n - 1), so the corner
  pixels of input and output coincide.
  """

  def matrix(n):
    pos = np.arange(2 * n) * (n - 1) / max(2 * n - 1, 1)
    lo = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
    frac = pos - lo
    m = np.zeros((2 * n, n), np.float32)
    m[np.arange(2 * n), lo] += 1 - frac
    if n > 1:
      m[np.arange(2 * n), lo + 1] += frac
    return jnp.asarray(m)

  x = jnp.einsum('oh,bhwc->bowc', matrix(x.shape[1]), x)
  return jnp.einsum('ow,bhwc->bhoc', matrix(x.shape[2]), x)


class RandomProjection(nn.Module):
  """A fixed random 1x1 conv (torch's default init) kept in ``frozen``."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cin = x.shape[-1]
    bound = cin**-0.5
    kernel = self.variable(
        FROZEN,
        'kernel',
        lambda: _uniform(bound)(self.make_rng('params'), (cin, self.features)),
    ).value
    bias = self.variable(
        FROZEN,
        'bias',
        lambda: _uniform(bound)(self.make_rng('params'), (self.features,)),
    ).value
    return jnp.einsum('bhwc,cd->bhwd', x, kernel) + bias


def project(
    maps: list[jax.Array], proj_type: int, cout: int, expand: bool
) -> list[jax.Array]:
  """CCM and CSM of ``F_RandomProj`` on the four maps (finest first).

  Must be called from a compact method (it creates `RandomProjection`s).
  """
  if proj_type == 0:
    return maps
  ccm_channels = [cout, 2 * cout, 4 * cout, 8 * cout] if expand else [cout] * 4
  mixed = [
      RandomProjection(c, name=f'layer{i}_ccm')(m)
      for i, (m, c) in enumerate(zip(maps, ccm_channels))
  ]
  if proj_type == 1:
    return mixed
  out = [None] * 4
  below = None
  for i in (3, 2, 1, 0):
    x = mixed[i] if below is None else mixed[i] + below
    x = upsample_bilinear_2x(x)
    # The finest fusion block does not halve ("to save channels").
    c = x.shape[-1] // 2 if expand and i > 0 else x.shape[-1]
    out[i] = below = RandomProjection(c, name=f'layer{i}_csm')(x)
  return out


def _nominal_size(size: int) -> int:
  return 1 << max(size - 1, 0).bit_length()


def _disc_conv(features: int, kernel: int, stride: int, use_bias: bool):
  return nn.Conv(
      features,
      (kernel, kernel),
      strides=stride,
      padding=((1, 1), (1, 1)) if stride == 2 else 'VALID',
      use_bias=use_bias,
      kernel_init=_torch_conv_init,
      conv_general_dilated=layers.conv_general_dilated,
  )


class ClassMap(nn.Module):
  """``SingleDiscCond``'s ``embed_proj(embed(c))``: labels [B] -> [B, 64]."""

  num_classes: int

  @nn.compact
  def __call__(self, y: jax.Array) -> jax.Array:
    bound = EMBEDDING_DIM**-0.5  # torch's Linear init, weight and bias.
    e = nn.Embed(
        self.num_classes,
        EMBEDDING_DIM,
        embedding_init=nn.initializers.normal(1.0),
        name='embed',
    )(y)
    e = nn.Dense(
        CMAP_DIM,
        kernel_init=_torch_conv_init,
        bias_init=lambda key, shape, dtype=jnp.float32: _uniform(bound)(
            key, shape
        ),
        name='embed_proj',
    )(e)
    return nn.leaky_relu(e, 0.2)


class MiniDiscriminator(nn.Module):
  """``SingleDisc`` (patch=False, separable=False): map -> patch logits.

  With `num_classes` it is ``SingleDiscCond`` and takes labels y [B].
  """

  width: int = 64
  num_classes: int = 0

  @nn.compact
  def __call__(
      self, x: jax.Array, train: bool, y: jax.Array | None = None
  ) -> jax.Array:
    size = _nominal_size(x.shape[1])
    while size > _END_SIZE:
      size //= 2
      c = layers.scale_width(_CHANNELS[size], self.width)
      conv = _disc_conv(c, 4, 2, True)
      x = layers.apply_layer(conv, x, True, train)
      x = layers.normalize(x, 'batch', train, jnp.float32)
      x = nn.leaky_relu(x, 0.2)
    if self.num_classes:
      # SingleDiscCond: the patches' class maps projected on the label's.
      out = layers.apply_layer(
          _disc_conv(CMAP_DIM, 4, 1, False), x, True, train
      )
      cmap = ClassMap(self.num_classes, name='class_map')(y)
      x = jnp.sum(out * cmap[:, None, None, :], -1) * CMAP_DIM**-0.5
      return x.reshape(x.shape[0], -1)
    x = layers.apply_layer(_disc_conv(1, 4, 1, False), x, True, train)
    return x.reshape(x.shape[0], -1)


class ProjectedDiscriminator(nn.Module):
  """Images [B, S, S, 3] -> patch logits [B, P] of all mini-discriminators.

  Attributes:
    interp_size: side the images are resized to when they are smaller (the
      feature network's input; 224 in the reference).
    proj_type: 0 = the feature maps, 1 = CCM, 2 = CCM and CSM.
    cout: channels of the projections.
    expand: CCM widths cout, 2, 4, 8 cout (and CSM halving) instead of cout.
    num_discs: mini-discriminators on the finest num_discs maps (1-4).
    width: model.d_width (64 = the reference's channels).
    feature_path: the MobileNetV2 TFLite file ('' only with
      random_features).
    random_features: a randomly initialised feature network (tests only).
    num_classes: classes of the labels y (0: unconditional).
  """

  interp_size: int = 224
  proj_type: int = 2
  cout: int = 64
  expand: bool = True
  num_discs: int = 4
  width: int = 64
  feature_path: str = ''
  random_features: bool = False
  num_classes: int = 0

  def _feature_params(self, x: jax.Array) -> dict:
    if self.random_features:
      key = self.make_rng('params')
      return mobilenet_v2.MobileNetV2Stages().init(key, x[:1])['params']
    return jax.tree.map(jnp.asarray, load_feature_params(self.feature_path))

  @nn.compact
  def __call__(
      self, x: jax.Array, train: bool, y: jax.Array | None = None
  ) -> jax.Array:
    cond = {}
    if self.num_classes:
      cond['y'] = conditioning.labels_or_cycle(y, x.shape[0], self.num_classes)
    if x.shape[1] < self.interp_size:
      x = features_lib.resize(x, self.interp_size)
    params = self.variable(
        FROZEN, 'features', lambda: self._feature_params(x)
    ).value
    maps = mobilenet_v2.MobileNetV2Stages().apply({'params': params}, x)
    maps = project(maps, self.proj_type, self.cout, self.expand)
    logits = [
        MiniDiscriminator(self.width, self.num_classes, name=f'mini_disc_{i}')(
            m, train, **cond
        )
        for i, m in enumerate(maps[: self.num_discs])
    ]
    return jnp.concatenate(logits, axis=1)


def check_config(model: ml_collections.ConfigDict, image_size: int) -> None:
  """One-line ValueErrors for unusable projected-discriminator settings."""
  if model.proj_type not in PROJ_TYPES:
    raise ValueError(
        f'model.proj_type={model.proj_type!r} is not supported (valid: 0, 1, 2)'
    )
  if not 1 <= model.num_discs <= 4:
    raise ValueError(f'model.num_discs={model.num_discs!r} must be 1 to 4')
  size = max(model.interp_size, image_size)
  # The coarsest map is size / 32 (size / 16 after CSM's upsampling); the
  # fusions add maps of consecutive strides, and a mini-discriminator's
  # last conv needs 4 px.
  coarsest = size // (16 if model.proj_type == 2 else 32)
  if model.interp_size % 32 or coarsest < 4:
    raise ValueError(
        f'model.interp_size={model.interp_size!r} must be a multiple of 32 '
        f'and at least {64 if model.proj_type == 2 else 128} for '
        f'model.proj_type={model.proj_type}'
    )
  if model.feature_random_init:
    return
  load_feature_params(model.feature_path)


def build(config: ml_collections.ConfigDict) -> ProjectedDiscriminator:
  """The projected discriminator of config.model (checked first)."""
  model = config.model
  check_config(model, config.data.image_size)
  return ProjectedDiscriminator(
      interp_size=model.interp_size,
      proj_type=model.proj_type,
      cout=model.proj_cout,
      expand=model.proj_expand,
      num_discs=model.num_discs,
      width=model.d_width,
      feature_path=model.feature_path,
      random_features=model.feature_random_init,
      num_classes=config.data.get('num_classes', 0),
  )


def check_scorer(config: ml_collections.ConfigDict) -> None:
  """Refuses to score a run with the network its discriminator learns from.

  A discriminator that sees a network's features can lower the FID
  measured with that network without better images (Kynkaanniemi et al.,
  ICLR 2023), so eval.features must be another network (e.g.
  'mobilenet_v2_inat') unless eval.allow_same_network=True. FastGAN's
  discriminator is refused too: its features are trained to decode into
  images close in that network's feature space, and G learns from them.

  Raises:
    ValueError: one line naming the fields.
  """
  from catgan_jax.models import fastgan  # pylint: disable=g-import-not-at-top

  ev = config.eval
  if (
      ev.every_steps < 0
      or ev.get('allow_same_network', False)
      or config.model.name not in fastgan.NAMES
      or config.model.get('discriminator', '') not in fastgan.DISCRIMINATORS
  ):
    return
  same_file = (
      ev.features_path
      and config.model.feature_path
      and os.path.realpath(ev.features_path)
      == os.path.realpath(config.model.feature_path)
  )
  if ev.features == FEATURE_NETWORK or same_file:
    raise ValueError(
        f'eval.features={ev.features!r} is the network the '
        f'{config.model.discriminator} discriminator learns from '
        '(model.feature_path), which the generator can fool without better '
        'images; score with eval.features='
        "'mobilenet_v2_inat' (or 'inception_v3'), or set "
        '--config.eval.allow_same_network=True'
    )
