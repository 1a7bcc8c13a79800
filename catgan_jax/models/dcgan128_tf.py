"""The 128 px DCGAN of the TensorFlow 1 cat script, native size 128 px.

  G: z -> Dense 8x8x1024 -> LeakyReLU(0.2)
     -> [ConvTranspose 5x5 stride 2 -> BN, LeakyReLU] x 4 (512, 256, 128, 64)
     -> ConvTranspose 5x5 stride 1 to 3 channels -> tanh.
  D: Conv 5x5: 64 /2, 128 /2, 256 /2, 512 /1, 1024 /2, each followed by BN
     (not the first) and LeakyReLU(0.2) -> flatten 8x8x1024 -> Dense(1).

As in tf.layers, every layer has a bias, convolution weights are
TruncatedNormal(0.02) and dense weights Glorot-uniform; kernel sizes are the
source's (config.model.kernel_size does not apply). Channel counts are the
source's at g_width = d_width = 64 and scale by width / 64 otherwise.
Smaller images (16, 32, 64) drop stride-2 layers from the front of each
network (G's widest upsampling layers, D's first layers), so both keep their
8x8 base; the first remaining D layer is not normalised. norm='none'
drops BatchNorm; norm='selu' drops it and uses SELU with LeCun-normal
weights.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from catgan_jax.models import layers

NAME = 'dcgan128_tf'
SUPPORTED_SIZES = (16, 32, 64, 128)
LEAK = 0.2
KERNEL = 5
# Channels at width 64: G's 8x8 seed and upsampling layers; D's layers as
# (channels, stride).
G_SEED, G_UP = 1024, (512, 256, 128, 64)
D_LAYERS = ((64, 2), (128, 2), (256, 2), (512, 1), (1024, 2))


def _inits(norm: str) -> tuple[layers.Initializer, layers.Initializer]:
  """(conv, dense) kernel initialisers."""
  if norm == 'selu':
    return layers.selu_kernel_init, layers.selu_kernel_init
  return (
      nn.initializers.truncated_normal(stddev=0.02),
      nn.initializers.glorot_uniform(),
  )


def _d_layers(image_size: int) -> tuple[tuple[int, int], ...]:
  """D's (channels, stride) at width 64, front stride-2 layers dropped."""
  num_drop = 4 - layers.num_doublings(image_size, 8)
  dropped = [i for i, (_, stride) in enumerate(D_LAYERS) if stride == 2]
  return tuple(
      spec for i, spec in enumerate(D_LAYERS) if i not in dropped[:num_drop]
  )


class Generator(nn.Module):
  """TF1 128 px generator: z [B, z_dim] -> images [B, S, S, 3] in [-1, 1].

  Attributes:
    image_size: side S of the output images (16, 32, 64 or 128).
    width: 64 gives the source's channel counts; others scale them.
    norm: 'batch', 'none' or 'selu'.
    dtype: compute dtype; parameters stay float32, outputs are float32.
  """

  image_size: int = 128
  width: int = 64
  norm: str = 'batch'
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    """Generates images from latent vectors."""
    num_up = layers.num_doublings(self.image_size, 8)
    ch = lambda c: layers.scale_width(c, self.width)
    conv_init, dense_init = _inits(self.norm)

    seed = ch(G_SEED)
    x = nn.Dense(8 * 8 * seed, kernel_init=dense_init, dtype=self.dtype)(z)
    x = x.reshape(z.shape[0], 8, 8, seed)
    x = layers.activate(x, self.norm, LEAK)
    for features in G_UP[len(G_UP) - num_up :]:
      x = layers.ConvTranspose2x(
          ch(features), KERNEL, kernel_init=conv_init, dtype=self.dtype
      )(x)
      x = layers.normalize(x, self.norm, train, self.dtype)
      x = layers.activate(x, self.norm, LEAK)
    x = nn.ConvTranspose(
        3,
        (KERNEL, KERNEL),
        padding='SAME',
        kernel_init=conv_init,
        dtype=self.dtype,
    )(x)
    return jnp.tanh(x).astype(jnp.float32)


class Discriminator(nn.Module):
  """TF1 128 px discriminator: images [B, S, S, 3] -> logits [B].

  Attributes:
    image_size: side S of the input images (16, 32, 64 or 128).
    width: 64 gives the source's channel counts; others scale them.
    norm: 'batch', 'layer', 'none' or 'selu'.
    spectral_norm: spectrally normalise every layer (PyTorch's
      spectral_norm: raw weights stored); a 'batch' discriminator then has
      no BatchNorm (`layers.sn_feature_norm`).
    dtype: compute dtype; parameters stay float32, logits are float32.
  """

  image_size: int = 128
  width: int = 64
  norm: str = 'batch'
  spectral_norm: bool = False
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """Scores images; larger logits mean 'real'."""
    # With spectral norm, no BatchNorm (it would undo SN; see layers).
    feature_norm = layers.sn_feature_norm(self.norm, self.spectral_norm)
    conv_init, dense_init = _inits(self.norm)
    for i, (features, stride) in enumerate(_d_layers(self.image_size)):
      conv = nn.Conv(
          layers.scale_width(features, self.width),
          (KERNEL, KERNEL),
          strides=(stride, stride),
          padding='SAME',
          kernel_init=conv_init,
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
      )
    x = x.reshape(x.shape[0], -1)
    head = nn.Dense(1, kernel_init=dense_init, dtype=self.dtype)
    x = layers.apply_layer(head, x, self.spectral_norm, train)
    return x.reshape(x.shape[0]).astype(jnp.float32)


def build(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for config.data.image_size."""
  return layers.build_pair(
      config, NAME, SUPPORTED_SIZES, Generator, Discriminator
  )
