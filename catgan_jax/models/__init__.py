"""Generator/discriminator pairs, looked up by config.model.name.

Each entry of `MODELS` builds the (generator, discriminator) pair of one
architecture from a config; adding an architecture is one new entry.

  Generator.__call__(z [B, z_dim], train) -> images [B, S, S, 3], float32,
      in [-1, 1] (tanh; r3gan, fastgan: linear when training, clipped
      otherwise).
  Discriminator.__call__(x [B, S, S, 3], train) -> raw logits [B], float32
      (a projected discriminator: patch logits [B, P]; FastGAN's: [B, 50],
      and with a quadrant `part` also its reconstruction loss, see
      step.Networks.d_reconstructs).

A class-conditional pair (data.num_classes > 0, model.g_cond / d_cond:
dcgan, r3gan, fastgan with the projected discriminator) also takes int
labels ``y`` [B] as a keyword argument; without them the classes come in
equal blocks along the batch (models/conditioning.py).

BatchNorm statistics and spectral-norm state live in the ``batch_stats``
collection (mutable when train=True); frozen weights (a projected
discriminator's feature network and random projections) in ``frozen``.
"""

from collections.abc import Callable

import flax.linen as nn
import ml_collections

from catgan_jax.models import dcgan
from catgan_jax.models import dcgan128_tf
from catgan_jax.models import fastgan
from catgan_jax.models import keras_dcgan
from catgan_jax.models import r3gan

# The architectures that take class labels (model.g_cond / d_cond).
CONDITIONAL = (dcgan.NAME, r3gan.NAME, *fastgan.NAMES)

ModelBuilder = Callable[
    [ml_collections.ConfigDict], tuple[nn.Module, nn.Module]
]

MODELS: dict[str, ModelBuilder] = {
    dcgan.NAME: dcgan.build,
    keras_dcgan.NAME: keras_dcgan.build,
    dcgan128_tf.NAME: dcgan128_tf.build,
    r3gan.NAME: r3gan.build,
    **{name: fastgan.build for name in fastgan.NAMES},
}

# The DCGAN family's fields (dcgan, keras_dcgan, dcgan128_tf), with their
# unset values: set for R3GAN or FastGAN, which have their own fixed
# normalisation and kernels, they would be silently ignored. keras_dcgan and
# dcgan128_tf keep kernel_size, unused, as their configs' record of the
# source's 5x5.
_DCGAN_FAMILY = (dcgan.NAME, keras_dcgan.NAME, dcgan128_tf.NAME)
_FAMILY_FIELDS = (
    ('kernel_size', 4, _DCGAN_FAMILY),
    ('norm', 'batch', _DCGAN_FAMILY),
    ('d_norm', '', _DCGAN_FAMILY),
    ('spectral_norm', False, _DCGAN_FAMILY),
)


def create_models(
    config: ml_collections.ConfigDict,
) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) for config.model.name at config.data.image_size.

  Args:
    config: the run config (fields model.* and data.image_size).

  Returns:
    The unbound generator and discriminator modules.

  Raises:
    ValueError: with one line naming the field and value, for an unknown
      model.name, an image size the model does not support, or an unknown
      model.norm / model.d_norm / model.dtype.
  """
  name = config.model.name
  if name not in MODELS:
    raise ValueError(
        f'model.name={name!r} is not supported '
        f'(valid: {", ".join(map(repr, MODELS))}).'
    )
  # Only the DCGAN family builds these choices; elsewhere they would be
  # silently ignored.
  for field, unset in (
      ('kernel_init', ''),
      ('use_bias', None),
      ('base_size', 4),
      ('g_leak', 0.0),
  ):
    value = config.model.get(field, unset)
    if value != unset and name != dcgan.NAME:
      raise ValueError(
          f'model.{field}={value!r} is only supported by '
          f"model.name='{dcgan.NAME}', not {name!r}"
      )
  for field in ('g_cond', 'd_cond'):
    value = config.model.get(field, '')
    if value and name not in CONDITIONAL:
      raise ValueError(
          f'model.{field}={value!r} is only supported by model.name '
          f'{" or ".join(map(repr, CONDITIONAL))}, not {name!r}'
      )
  for field, unset, users in _FAMILY_FIELDS:
    value = config.model.get(field, unset)
    if value != unset and name not in users:
      raise ValueError(
          f'model.{field}={value!r} is only used by model.name '
          f'{" / ".join(map(repr, users))}, not {name!r}'
      )
  num_classes = config.data.get('num_classes', 0)
  if num_classes and name not in CONDITIONAL:
    raise ValueError(
        f'data.num_classes={num_classes}: class conditioning is only '
        f'supported by model.name {" or ".join(map(repr, CONDITIONAL))}, '
        f'not {name!r}'
    )
  return MODELS[name](config)
