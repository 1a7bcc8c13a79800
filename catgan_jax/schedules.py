"""Hyperparameter schedules over training images (the R3GAN recipe).

R3GAN (github.com/brownvc/R3GAN, ``training/training_loop.py``) moves five
values along ``cosine_decay_with_warmup`` (no warmup, no hold) over the first
``decay_nimg`` training images, evaluated at the images seen before each
iteration: the learning rate, Adam's beta2, the R1/R2 weight gamma, the
augmentation probability and the EMA half-life. ``cosine_ramp`` is that
function, from optax; everything here is a pure function of the step, with
``images = step * batch_size``, so a resumed run continues on the same curve.

The config fields are ``config.schedule.*`` (see configs/default.py). Each
ramp is off by default; a function for one that is off returns its plain
config value as a Python number, so the train step of a config without
schedules is the program it was before they existed.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

Config = ml_collections.ConfigDict
Scalar = float | jax.Array


def cosine_ramp(start: float, end: float, decay_nimg: float) -> optax.Schedule:
  """Images seen -> value, a half cosine from `start` to `end`, then `end`.

  The reference's ``cosine_decay_with_warmup(n, start, decay_nimg, end)``:
  ``start + (end - start) * (1 - cos(pi * n / decay_nimg)) / 2``. Written as
  ``end + (start - end) * optax.cosine_decay_schedule(1, decay_nimg)(n)``,
  which also holds for ramps up from 0 (optax's alpha form cannot start at
  0). With decay_nimg <= 0 the value is `end` from the start.

  Args:
    start: the value at image 0.
    end: the value from image decay_nimg on.
    decay_nimg: length of the ramp in images.

  Returns:
    An optax schedule of the number of images seen.
  """
  if decay_nimg <= 0:
    return optax.constant_schedule(end)
  decay = optax.cosine_decay_schedule(1.0, decay_nimg)
  return lambda images: end + (start - end) * decay(images)


def images_seen(step: jax.Array | int, batch_size: int) -> jax.Array:
  """Training images before iteration `step` (float32: exact to 1.6e7)."""
  return jnp.asarray(step, jnp.float32) * batch_size


def ema_decay_from_half_life(half_life_nimg: Scalar, batch_size: int) -> Scalar:
  """EMA decay per step of a half-life in images: 0.5 ** (batch / half-life).

  A half-life of 0 gives decay 0 (the EMA is the current parameters), as the
  reference's ``max(half_life, 1e-8)`` does.
  """
  return 0.5 ** (batch_size / jnp.maximum(half_life_nimg, 1e-8))


# --- The schedules of a config -------------------------------------------------

# What a config without a `schedule` section (one saved by a run from before
# schedules existed, read back by checkpoint.load_generator) means.
_OFF = ml_collections.ConfigDict(
    {
        'decay_nimg': 0,
        'lr_end_factor': 1.0,
        'b2_end': None,
        'gamma_end_factor': 1.0,
        'aug_p_ramp': False,
        'ema_half_life_nimg': 0,
    }
)


def _fields(config: Config) -> Config:
  return config.get('schedule') or _OFF


def lr_scheduled(config: Config) -> bool:
  return _fields(config).lr_end_factor != 1.0


def b2_scheduled(config: Config) -> bool:
  return _fields(config).b2_end is not None


def gamma_scheduled(config: Config) -> bool:
  return _fields(config).gamma_end_factor != 1.0


def ema_scheduled(config: Config) -> bool:
  return _fields(config).ema_half_life_nimg > 0


def _ramp(
    config: Config, start: float, end: float, step: jax.Array | int
) -> jax.Array:
  ramp = cosine_ramp(start, end, _fields(config).decay_nimg)
  return jnp.asarray(ramp(images_seen(step, config.batch_size)), jnp.float32)


def b2_start(config: Config, net: str) -> float:
  """Adam beta2 of network `net` ('g' or 'd') at step 0."""
  b2 = config.optim[f'{net}_b2']
  return config.optim.b2 if b2 is None else b2


def optimizer_hyperparams(
    config: Config, net: str, step: jax.Array | int
) -> dict[str, jax.Array]:
  """The scheduled optimiser hyperparameters of `net` at `step`.

  Returns:
    ``lr_factor`` (the learning rate is optim.{net}_lr times it, and times
    the rollback factors) and ``b2``, each only when scheduled; ``{}`` when
    nothing is.
  """
  out = {}
  if lr_scheduled(config):
    out['lr_factor'] = _ramp(config, 1.0, _fields(config).lr_end_factor, step)
  if b2_scheduled(config):
    out['b2'] = _ramp(
        config, b2_start(config, net), _fields(config).b2_end, step
    )
    ratio = lazy_reg_ratio(config, net)
    if ratio != 1.0:
      out['b2'] = out['b2'] ** ratio
  return out


def lazy_reg_ratio(config: Config, net: str) -> float:
  """stylegan2-ada's ``mb_ratio`` of network `net`: k / (k + 1) for D with
  lazy regularisation every k > 1 updates (loss.reg_every), else 1.

  Its regularised iterations take two optimiser steps (the main loss, then
  the penalties), k + 1 in k iterations; training_loop.py scales Adam's
  learning rate by mb_ratio and raises its betas to mb_ratio to keep the
  step size and the moments' horizon per iteration.
  """
  k = config.loss.get('reg_every', 1)
  return k / (k + 1) if net == 'd' and k > 1 else 1.0


def gamma_factor(config: Config, step: jax.Array | int) -> Scalar:
  """Multiplier of loss.r1_weight and loss.r2_weight at `step` (1.0 if off)."""
  if not gamma_scheduled(config):
    return 1.0
  return _ramp(config, 1.0, _fields(config).gamma_end_factor, step)


def base_aug_p(config: Config) -> float:
  """The augmentation probability a config sets (the ramp's end): the
  data.diffaugment_p of DiffAugment or the data.ada_p of ADA's pipe."""
  if config.data.get('augment', 'diffaugment') == 'ada':
    return config.data.ada_p
  return config.data.diffaugment_p


def augmenting(config: Config) -> bool:
  """Whether D's inputs are augmented (a DiffAugment policy or ADA's pipe)."""
  data = config.data
  return data.get('augment', 'diffaugment') == 'ada' or bool(data.diffaugment)


def aug_p(config: Config, step: jax.Array | int, current: Any) -> Any:
  """Augmentation probability at `step`: the ramp, or `current` when off."""
  if not _fields(config).aug_p_ramp:
    return current
  return _ramp(config, 0.0, base_aug_p(config), step)


def ema_half_life(config: Config, step: jax.Array | int) -> jax.Array:
  """EMA half-life in images at `step` (ramped from 0)."""
  return _ramp(config, 0.0, _fields(config).ema_half_life_nimg, step)


def ema_decay(config: Config, step: jax.Array | int) -> Scalar:
  """EMA decay of the generator at `step`: train.ema_decay when not scheduled."""
  if not ema_scheduled(config):
    return config.train.ema_decay
  return ema_decay_from_half_life(
      ema_half_life(config, step), config.batch_size
  )


def logged_values(
    config: Config, step: jax.Array | int
) -> dict[str, jax.Array]:
  """The scheduled values of `step` that are on, as scalars to log.

  The learning rates are logged from the optimiser state (``g_lr``,
  ``d_lr``) and the augmentation probability as ``aug_p``; this adds Adam's
  beta2 (``g_b2``, ``d_b2``), the R1/R2 weights (``r1_weight``,
  ``r2_weight``), and the EMA's half-life (``ema_half_life_kimg``) and decay
  (``ema_decay``).
  """
  out = {}
  if b2_scheduled(config):
    for net in ('g', 'd'):
      out[f'{net}_b2'] = optimizer_hyperparams(config, net, step)['b2']
  if gamma_scheduled(config):
    for name in ('r1_weight', 'r2_weight'):
      weight = config.loss.get(name, 0.0)
      if weight > 0:
        out[name] = weight * gamma_factor(config, step)
  if ema_scheduled(config):
    out['ema_half_life_kimg'] = ema_half_life(config, step) / 1000
    out['ema_decay'] = jnp.asarray(ema_decay(config, step), jnp.float32)
  return out


def check_config(config: Config) -> None:
  """Raises a one-line ValueError for schedule settings that cannot work."""
  s = _fields(config)
  ramps = {
      'schedule.lr_end_factor': lr_scheduled(config),
      'schedule.b2_end': b2_scheduled(config),
      'schedule.gamma_end_factor': gamma_scheduled(config),
      'schedule.aug_p_ramp': s.aug_p_ramp,
  }
  for field, on in ramps.items():
    if on and s.decay_nimg <= 0:
      raise ValueError(
          f'{field} is set but schedule.decay_nimg='
          f'{s.decay_nimg} (the ramp needs a length > 0).'
      )
  if s.lr_end_factor <= 0:
    raise ValueError(
        f'schedule.lr_end_factor={s.lr_end_factor} must be positive.'
    )
  if b2_scheduled(config):
    for net in ('g', 'd'):
      if config.optim[f'{net}_name'] != 'adam':
        raise ValueError(
            f'schedule.b2_end={s.b2_end} needs Adam; '
            f'optim.{net}_name={config.optim[f"{net}_name"]!r}.'
        )
  if s.aug_p_ramp and not augmenting(config):
    raise ValueError(
        'schedule.aug_p_ramp=True needs a data.diffaugment '
        "policy (it is empty) or data.augment='ada'."
    )
  if s.aug_p_ramp and config.data.ada_target > 0:
    raise ValueError(
        'schedule.aug_p_ramp=True and data.ada_target='
        f'{config.data.ada_target} both set the augmentation '
        'probability; use one.'
    )
  if ema_scheduled(config) and config.train.ema_decay > 0:
    raise ValueError(
        f'schedule.ema_half_life_nimg={s.ema_half_life_nimg} and '
        f'train.ema_decay={config.train.ema_decay} both set the EMA; use one.'
    )
