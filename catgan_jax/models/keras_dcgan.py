"""The DCGAN of the Keras cat-faces script, native size 64 px.

  G: z (128) -> Dense 2048 -> reshape 4x4x128
     -> Conv2DTranspose 5x5 512 (stride 1) -> BN, ReLU
     -> [Conv2DTranspose 5x5 stride 2 -> BN, ReLU] x 4 (256, 128, 64, 32)
     -> per-pixel Dense(3) -> tanh.
  D: [Conv 4x4 stride 2] x 4 (64, 64, 128, 256), BN from the second,
     LeakyReLU(0.2) -> flatten -> Dense(1).

Convolutions are bias-free, weights ~ TruncatedNormal(0.02). The kernel
sizes (5 in G, 4 in D) are the source's; config.model.kernel_size does not
apply. Channel counts are the source's at g_width = d_width = 64 and scale by
width / 64 otherwise. Smaller images (16, 32) drop stride-2 layers from the
front of each network (G's widest upsampling layers, D's first layers), so D
always ends on a 4x4 map; the first remaining D layer is not normalised.
norm='none' / 'selu' replace BatchNorm as in `dcgan` (then with biases).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from catgan_jax.models import layers

NAME = 'keras_dcgan'
SUPPORTED_SIZES = (16, 32, 64)
LEAK = 0.2
G_KERNEL = 5
D_KERNEL = 4
# Channels at width 64: the 4x4 seed, the stride-1 layer, the stride-2 layers.
G_SEED, G_FIRST, G_UP = 128, 512, (256, 128, 64, 32)
D_DOWN = (64, 64, 128, 256)


def _kernel_init(norm: str) -> layers.Initializer:
  return (
      layers.selu_kernel_init
      if norm == 'selu'
      else nn.initializers.truncated_normal(stddev=0.02)
  )


class Generator(nn.Module):
  """Keras cat-faces generator: z [B, z_dim] -> images [B, S, S, 3].

  Attributes:
    image_size: side S of the output images (16, 32 or 64).
    width: 64 gives the source's channel counts; others scale them.
    norm: 'batch', 'none' or 'selu'.
    dtype: compute dtype; parameters stay float32, outputs are float32.
  """

  image_size: int = 64
  width: int = 64
  norm: str = 'batch'
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    """Generates images in [-1, 1] from latent vectors."""
    num_up = layers.num_doublings(self.image_size, 4)
    ch = lambda c: layers.scale_width(c, self.width)
    use_bias = self.norm != 'batch'
    kernel_init = _kernel_init(self.norm)

    seed = ch(G_SEED)
    x = nn.Dense(4 * 4 * seed, kernel_init=kernel_init, dtype=self.dtype)(z)
    x = x.reshape(z.shape[0], 4, 4, seed)
    x = nn.ConvTranspose(
        ch(G_FIRST),
        (G_KERNEL, G_KERNEL),
        padding='SAME',
        use_bias=use_bias,
        kernel_init=kernel_init,
        dtype=self.dtype,
    )(x)
    x = layers.normalize(x, self.norm, train, self.dtype)
    x = layers.activate(x, self.norm)
    for features in G_UP[len(G_UP) - num_up :]:
      x = layers.ConvTranspose2x(
          ch(features),
          G_KERNEL,
          use_bias=use_bias,
          kernel_init=kernel_init,
          dtype=self.dtype,
      )(x)
      x = layers.normalize(x, self.norm, train, self.dtype)
      x = layers.activate(x, self.norm)
    # A Dense on the channel axis is the source's per-pixel Dense(3).
    x = nn.Dense(3, kernel_init=kernel_init, dtype=self.dtype)(x)
    return jnp.tanh(x).astype(jnp.float32)


class Discriminator(nn.Module):
  """Keras cat-faces discriminator: images [B, S, S, 3] -> logits [B].

  Attributes:
    image_size: side S of the input images (16, 32 or 64).
    width: 64 gives the source's channel counts; others scale them.
    norm: 'batch', 'layer', 'none' or 'selu'.
    spectral_norm: spectrally normalise every layer (PyTorch's
      spectral_norm: raw weights stored); a 'batch' discriminator then has
      no BatchNorm (`layers.sn_feature_norm`).
    dtype: compute dtype; parameters stay float32, logits are float32.
  """

  image_size: int = 64
  width: int = 64
  norm: str = 'batch'
  spectral_norm: bool = False
  dtype: layers.Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """Scores images; larger logits mean 'real'."""
    # With spectral norm, no BatchNorm (it would undo SN; see layers).
    feature_norm = layers.sn_feature_norm(self.norm, self.spectral_norm)
    num_down = layers.num_doublings(self.image_size, 4)
    use_bias = self.norm != 'batch'
    kernel_init = _kernel_init(self.norm)

    for i, features in enumerate(D_DOWN[len(D_DOWN) - num_down :]):
      conv = nn.Conv(
          layers.scale_width(features, self.width),
          (D_KERNEL, D_KERNEL),
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
      )
    x = x.reshape(x.shape[0], -1)
    head = nn.Dense(1, kernel_init=kernel_init, dtype=self.dtype)
    x = layers.apply_layer(head, x, self.spectral_norm, train)
    return x.reshape(x.shape[0]).astype(jnp.float32)


def build(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for config.data.image_size."""
  return layers.build_pair(
      config, NAME, SUPPORTED_SIZES, Generator, Discriminator
  )
