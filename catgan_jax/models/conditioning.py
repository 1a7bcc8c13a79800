"""Class conditioning of generators and discriminators.

Generator (model.g_cond):
  'concat': a learned class embedding concatenated to z (the conditional
    GAN of Mirza and Osindero 2014; stylegan2-ada's mapping network embeds c
    and concatenates it to z the same way).
  'cbn': conditional BatchNorm with a shared class embedding, as BigGAN
    (Brock et al. 2019; BigGAN-PyTorch layers.ccbn and G.shared): every
    BatchNorm of G normalises without its own affine map and takes its gain
    ``1 + W_g e`` and bias ``W_b e`` from the one embedding ``e`` of the
    class, through a linear map of its own. BigGAN-PyTorch also splits z
    into chunks fed beside e (hierarchical z); here e alone is used.

Discriminator (model.d_cond):
  'projection': the projection discriminator (Miyato and Koyama, ICLR 2018;
    pfnet-research/sngan_projection, SNResNetProjectionDiscriminator):
    ``logit(x, y) = psi(phi(x)) + <embed(y), phi(x)>``, with ``phi(x)`` the
    last feature map summed over its positions (the reference's
    ``F.sum(h, axis=(2, 3))``) and psi the unconditional head. The
    reference spectrally normalises the embedding; here it is plain.

A conditional network called without labels (``y=None``) takes the classes
in equal contiguous blocks along the batch (`block_labels`: 0, 0, 1, 1, ...),
so that samplers that pass latents alone (standing statistics, network
initialisation) see every class about equally often, and a fixed-noise grid
of C * n samples, n per row, has one row per class. Scoring passes labels
drawn from the data's class frequencies (`evaluation.intra_fid`).

R3GAN's conditioning is its reference's own (`r3gan`), the projected
discriminator's is Projected GAN's ``SingleDiscCond`` (`projected`), and
FastGAN's 'cbn' is Projected GAN's ``CCBN`` (spectrally normalised gain
and bias maps of an embedding of z's size; `fastgan`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from catgan_jax.models import layers

G_CONDS = ('', 'concat', 'cbn')
D_CONDS = ('', 'projection')


def block_labels(batch_size: int, num_classes: int) -> jax.Array:
  """Labels for a batch given none: ``i * C // B``, equal blocks in order."""
  return jnp.arange(batch_size, dtype=jnp.int32) * num_classes // batch_size


def labels_or_cycle(
    y: jax.Array | None, batch_size: int, num_classes: int
) -> jax.Array:
  """`y`, or `block_labels` when it is None."""
  if y is None:
    return block_labels(batch_size, num_classes)
  return jnp.asarray(y, jnp.int32)


class ConditionalBatchNorm(nn.Module):
  """BatchNorm whose gain and bias are linear maps of a class embedding.

  BigGAN-PyTorch's ``ccbn``: ``out = norm(x) * (1 + gain(e)) + bias(e)``,
  with ``norm`` a BatchNorm without affine parameters (its running
  statistics in ``batch_stats``).

  Attributes:
    dtype: compute dtype.
    spectral_norm: spectrally normalise the gain and bias maps (BigGAN's
      ``SNLinear``; Projected GAN's FastGAN ``CCBN`` with ``linear``).
    kernel_init: initialiser of their weights.
    bias_init: initialiser of their biases.
  """

  dtype: layers.Dtype = jnp.float32
  spectral_norm: bool = False
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array, e: jax.Array, train: bool) -> jax.Array:
    features = x.shape[-1]
    x = nn.BatchNorm(
        use_running_average=not train,
        momentum=layers.BN_MOMENTUM,
        epsilon=layers.BN_EPSILON,
        use_scale=False,
        use_bias=False,
        dtype=self.dtype,
    )(x)
    dense = lambda name: nn.Dense(
        features,
        dtype=self.dtype,
        kernel_init=self.kernel_init,
        bias_init=self.bias_init,
        name=name,
    )
    gain = 1.0 + layers.apply_layer(dense('gain'), e, self.spectral_norm, train)
    bias = layers.apply_layer(dense('bias'), e, self.spectral_norm, train)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
    return x * gain.reshape(shape) + bias.reshape(shape)


def projection(
    features: jax.Array, embedding: jax.Array, y: jax.Array
) -> jax.Array:
  """``<embedding[y], sum of features over positions>``: [B].

  Args:
    features: D's last feature map [B, H, W, C] (or pooled [B, C]).
    embedding: the class embedding table [num_classes, C].
    y: int labels [B].
  """
  pooled = features.reshape(features.shape[0], -1, features.shape[-1]).sum(1)
  return jnp.sum(embedding[y] * pooled, axis=-1)


class Projection(nn.Module):
  """The projection term of a projection discriminator (see `projection`).

  Attributes:
    num_classes: number of classes.
  """

  num_classes: int

  @nn.compact
  def __call__(self, features: jax.Array, y: jax.Array) -> jax.Array:
    table = self.param(
        'embedding',
        nn.initializers.xavier_uniform(),
        (self.num_classes, features.shape[-1]),
        jnp.float32,
    )
    return projection(features.astype(jnp.float32), table, y)


def check(num_classes: int, g_cond: str, d_cond: str) -> None:
  """Checks the conditioning choices against data.num_classes.

  Raises:
    ValueError: one line naming the field and value.
  """
  layers.check_choice('model.g_cond', g_cond, G_CONDS)
  layers.check_choice('model.d_cond', d_cond, D_CONDS)
  if num_classes and not (g_cond and d_cond):
    raise ValueError(
        f'data.num_classes={num_classes} needs a conditional generator and '
        f'discriminator: set model.g_cond (one of {G_CONDS[1:]}) and '
        f'model.d_cond (one of {D_CONDS[1:]})'
    )
  if not num_classes and (g_cond or d_cond):
    raise ValueError(
        f'model.g_cond={g_cond!r} / model.d_cond={d_cond!r} condition on '
        'classes, but data.num_classes=0 (unconditional)'
    )


def check_reference_choices(
    model_name: str, g_cond: str, d_cond: str, g_only: str, d_only: str
) -> None:
  """Refuses conditioning other than the reference's one way in per network.

  Raises:
    ValueError: one line naming the field, its value and the reference's.
  """
  for field, value, only in (
      ('g_cond', g_cond, g_only),
      ('d_cond', d_cond, d_only),
  ):
    if value not in ('', only):
      raise ValueError(
          f'model.{field}={value!r} is not supported by '
          f'model.name={model_name!r} (its reference conditions by {only!r})'
      )
