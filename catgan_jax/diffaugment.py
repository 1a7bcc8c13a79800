"""DiffAugment: differentiable augmentations applied to real and fake images alike.

JAX port of Differentiable Augmentation (Zhao et al., 2020, "Differentiable
Augmentation for Data-Efficient GAN Training"): random brightness, saturation
and contrast ('color'), translation by up to 1/8 of the image with zero fill
('translation') and a square cutout of half the image side ('cutout'). Every
op is differentiable with respect to the images, so the generator is trained
through the same augmentations the discriminator sees.

Each op is applied to each image independently with probability ``p`` (as in
ADA, Karras et al., 2020), so ``p`` can be adapted during training; ``p = 0``
is the identity and ``p = 1`` is the original DiffAugment. `ada_update` is
ADA's rule for adapting it, as stylegan2-ada-pytorch's
``training/training_loop.py`` applies it.
"""

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
_TRANSLATION_RATIO = 0.125
_CUTOUT_RATIO = 0.5


def _uniform(key: Array, x: Array) -> Array:
  return jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype)


def brightness(x: Array, key: Array) -> Array:
  """Adds a per-image offset in [-0.5, 0.5)."""
  return x + (_uniform(key, x) - 0.5)


def saturation(x: Array, key: Array) -> Array:
  """Scales the distance to the per-pixel channel mean by a factor in [0, 2)."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  return (x - mean) * (_uniform(key, x) * 2.0) + mean


def contrast(x: Array, key: Array) -> Array:
  """Scales the distance to the per-image mean by a factor in [0.5, 1.5)."""
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (_uniform(key, x) + 0.5) + mean


def translation(
    x: Array, key: Array, ratio: float = _TRANSLATION_RATIO
) -> Array:
  """Shifts each image by up to ``ratio`` of its size; uncovered pixels become 0."""
  _, height, width, _ = x.shape
  max_y, max_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
  key_y, key_x = jax.random.split(key)
  shift_y = jax.random.randint(key_y, (x.shape[0],), -max_y, max_y + 1)
  shift_x = jax.random.randint(key_x, (x.shape[0],), -max_x, max_x + 1)
  padded = jnp.pad(x, ((0, 0), (max_y, max_y), (max_x, max_x), (0, 0)))

  def shift_one(image, dy, dx):
    return jax.lax.dynamic_slice(
        image, (max_y + dy, max_x + dx, 0), x.shape[1:]
    )

  return jax.vmap(shift_one)(padded, shift_y, shift_x)


def cutout(x: Array, key: Array, ratio: float = _CUTOUT_RATIO) -> Array:
  """Zeroes a square of ``ratio`` times the image side at a random centre."""
  n, height, width, _ = x.shape
  size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
  key_y, key_x = jax.random.split(key)
  # Centres range so that the square may hang over the border, as in the original.
  top = (
      jax.random.randint(key_y, (n, 1), 0, height + (1 - size_y % 2))
      - size_y // 2
  )
  left = (
      jax.random.randint(key_x, (n, 1), 0, width + (1 - size_x % 2))
      - size_x // 2
  )
  rows = jnp.arange(height)[None]
  cols = jnp.arange(width)[None]
  in_y = (rows >= top) & (rows < top + size_y)
  in_x = (cols >= left) & (cols < left + size_x)
  keep = ~(in_y[:, :, None] & in_x[:, None, :])
  return x * keep[..., None].astype(x.dtype)


# Policy name -> the ops it applies, in order.
POLICIES: dict[str, tuple[Callable[[Array, Array], Array], ...]] = {
    'color': (brightness, saturation, contrast),
    'translation': (translation,),
    'cutout': (cutout,),
}


def parse_policy(policy: str) -> list[str]:
  """'color,translation' -> ['color', 'translation'], checking every name."""
  names = [name.strip() for name in policy.split(',') if name.strip()]
  for name in names:
    if name not in POLICIES:
      raise ValueError(
          f'data.diffaugment={policy!r}: unknown policy {name!r}; '
          f'valid: {sorted(POLICIES)}'
      )
  return names


def diff_augment(
    x: Array, key: Array, policy: str, p: float | Array = 1.0
) -> Array:
  """Applies the DiffAugment ``policy`` to a batch of images.

  Args:
    x: images [N, H, W, C], float in [-1, 1].
    key: PRNG key.
    policy: comma-separated policy names ('color', 'translation', 'cutout');
      '' is the identity.
    p: probability that each op is applied to each image; a Python float or a
      traced scalar (adaptive augmentation). 0 is the identity.

  Returns:
    The augmented images, same shape and dtype; differentiable in ``x``.
  """
  names = parse_policy(policy)
  if not names or (isinstance(p, (int, float)) and p <= 0):
    return x
  ops = [op for name in names for op in POLICIES[name]]
  keys = jax.random.split(key, 2 * len(ops))
  for i, op in enumerate(ops):
    augmented = op(x, keys[2 * i])
    if isinstance(p, (int, float)) and p >= 1:
      x = augmented
    else:
      apply = jax.random.uniform(keys[2 * i + 1], (x.shape[0], 1, 1, 1)) < p
      x = jnp.where(apply, augmented, x)
  return x


def ada_adjustment(
    r_t: Array, target: float, batch_size: int, interval: int, kimg: float
) -> Array:
  """ADA's change of ``p`` after one interval (stylegan2-ada-pytorch).

  ``sign(r_t - target) * (batch_size * interval) / (kimg * 1000)``: ``p``
  moves by one unit in ``kimg`` thousand real images, up while the
  discriminator is too sure of the reals (``r_t = E[sign(D(real))]`` above
  the target), down otherwise.
  """
  return jnp.sign(r_t - target) * (batch_size * interval) / (kimg * 1000.0)


def ada_update(
    p: Array,
    stats: Array,
    step: Array,
    real_logits: Array,
    target: float,
    interval: int,
    kimg: float,
) -> tuple[Array, Array]:
  """Accumulates ``sign(D(real))`` and adjusts ``p`` every ``interval`` steps.

  As in stylegan2-ada-pytorch's training loop: the signs of the real logits
  are averaged over the ``interval`` iterations since the last adjustment
  (``r_t``), and after every ``interval``-th iteration ``p`` moves by
  `ada_adjustment` and is clamped at 0 (and here also at 1, since it is a
  probability; stylegan2-ada only clamps at 0).

  Args:
    p: the augmentation probability before iteration ``step``.
    stats: [2] float32, (sum of the signs, number of logits) accumulated
      since the last adjustment.
    step: the iteration number (0-based) being completed.
    real_logits: D(real) of this iteration, [B].
    target: ``data.ada_target``.
    interval: ``data.ada_interval``, iterations between adjustments.
    kimg: ``data.ada_kimg``, thousands of real images per unit of ``p``.

  Returns:
    (new p, new stats); stats are reset after an adjustment.
  """
  signs = jnp.sign(real_logits.astype(jnp.float32))
  stats = stats + jnp.stack(
      [jnp.sum(signs), jnp.asarray(signs.size, jnp.float32)]
  )
  due = (step + 1) % interval == 0
  r_t = stats[0] / jnp.maximum(stats[1], 1.0)
  adjusted = jnp.clip(
      p + ada_adjustment(r_t, target, real_logits.shape[0], interval, kimg),
      0.0,
      1.0,
  )
  return (
      jnp.where(due, adjusted, p).astype(p.dtype),
      jnp.where(due, jnp.zeros_like(stats), stats),
  )
