"""The GAN state: one pytree holding both networks, their optimisers and EMA.

Everything a run needs to continue bit-for-bit lives here, so a checkpoint is
simply this pytree: generator and discriminator `TrainState`s (params,
BatchNorm/spectral-norm `batch_stats`, optax state with its learning rate),
the EMA of the generator parameters, the iteration counter, the base PRNG key
and the adaptive-augmentation probability.
"""

from typing import Any, Callable

import flax
from flax import linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import optax

from catgan_jax import schedules


class TrainState(train_state.TrainState):
  """A network's `TrainState` plus its non-trainable `batch_stats`."""

  batch_stats: Any = None
  # Variables no update changes (the ``frozen`` collection: a projected
  # discriminator's feature network and random projections); kept here so
  # a checkpoint holds them, outside the optimiser. None (no leaves) for
  # networks without them, so their checkpoint layout is unchanged.
  frozen: Any = None


@flax.struct.dataclass
class GANState:
  """The whole GAN as one pytree."""

  step: jax.Array
  g: TrainState
  d: TrainState
  # EMA of the generator parameters; equals `g.params` when train.ema_decay=0.
  ema_params: Any
  # Base key: the key of iteration `step` is fold_in(rng, step), which makes
  # a resumed run draw exactly the numbers the uninterrupted one would.
  rng: jax.Array
  # Probability of the differentiable augmentation (adapted when ADA is on).
  aug_p: jax.Array
  # ADA only: (sum of sign(D(real)), count) since the last adjustment of
  # aug_p. None (no leaves) otherwise, so runs without ADA keep the
  # checkpoint layout they had before this field existed.
  ada_stats: Any = None


def _scaled_adam(learning_rate, lr_factor, b1, b2):
  return optax.adam(learning_rate * lr_factor, b1=b1, b2=b2)


def _scaled_rmsprop(learning_rate, lr_factor, decay, eps):
  return optax.rmsprop(
      learning_rate * lr_factor,
      decay=decay,
      eps=eps,
      initial_scale=0.0,
      eps_in_sqrt=False,
  )


def _adam(
    lr: float, b1: float, b2: float, lr_factor: bool = False
) -> optax.GradientTransformation:
  if lr_factor:
    return optax.inject_hyperparams(_scaled_adam)(
        learning_rate=lr, lr_factor=1.0, b1=b1, b2=b2
    )
  return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2)


def _rmsprop(
    lr: float, b1: float, b2: float, lr_factor: bool = False
) -> optax.GradientTransformation:
  """torch.optim.RMSprop with its defaults, as the WGAN references use it.

  v = alpha * v + (1 - alpha) * g^2 (v starts at 0, alpha = 0.99) and
  p -= lr * g / (sqrt(v) + eps), eps = 1e-8. torch adds eps *after* the
  square root; optax's default puts it inside (sqrt(v + eps)), which, with v
  starting at 0, bounds the first steps' size very differently for small
  gradients (eps_in_sqrt=False is torch's placement).
  """
  del b1, b2  # RMSProp has no momentum terms here (as in the WGAN paper).
  if lr_factor:
    return optax.inject_hyperparams(_scaled_rmsprop)(
        learning_rate=lr, lr_factor=1.0, decay=0.99, eps=1e-8
    )
  return optax.inject_hyperparams(optax.rmsprop, static_args=('eps_in_sqrt',))(
      learning_rate=lr,
      decay=0.99,
      eps=1e-8,
      initial_scale=0.0,
      eps_in_sqrt=False,
  )


# Optimisers by name; the learning rate is an injected hyperparameter so it
# lives in the optimiser state (checkpointed, and lowered on rollback). With
# lr_factor=True the rate is learning_rate * lr_factor, both injected: the
# train step sets lr_factor from the learning-rate schedule, a rollback
# scales learning_rate, and neither overwrites the other.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    'adam': _adam,
    'rmsprop': _rmsprop,
}


def _pick(value, default):
  return default if value is None else value


def make_optimizer(
    optim: ml_collections.ConfigDict,
    net: str,
    lr_factor: bool = False,
    mb_ratio: float = 1.0,
) -> optax.GradientTransformation:
  """Builds the optimiser of network `net` ('g' or 'd') from `config.optim`.

  Args:
    optim: `config.optim`.
    net: 'g' or 'd'.
    lr_factor: give the optimiser an `lr_factor` hyperparameter (for a
      learning-rate schedule, see `set_hyperparams`).
    mb_ratio: lazy regularisation's adjustment (`schedules.lazy_reg_ratio`):
      the learning rate times it, the betas to its power.

  Returns:
    The optax optimiser, with injected hyperparameters.
  """
  name = optim[f'{net}_name']
  lr = optim[f'{net}_lr']
  b1 = _pick(optim[f'{net}_b1'], optim.b1)
  b2 = _pick(optim[f'{net}_b2'], optim.b2)
  if mb_ratio != 1.0:
    lr, b1, b2 = lr * mb_ratio, b1**mb_ratio, b2**mb_ratio
  return OPTIMIZERS[name](lr, b1, b2, lr_factor=lr_factor)


def _init_train_state(
    module: nn.Module,
    tx: optax.GradientTransformation,
    key: jax.Array,
    dummy: jax.Array,
) -> TrainState:
  variables = module.init({'params': key}, dummy, train=False)
  return TrainState.create(
      apply_fn=module.apply,
      params=variables['params'],
      batch_stats=variables.get('batch_stats', {}),
      frozen=variables.get('frozen'),
      tx=tx,
  )


def create_state(
    config: ml_collections.ConfigDict,
    generator: nn.Module,
    discriminator: nn.Module,
) -> GANState:
  """Initialises the GAN state from `config.seed`.

  Args:
    config: the run config.
    generator: Linen generator, `(z, train) -> images`.
    discriminator: Linen discriminator, `(images, train) -> logits`.

  Returns:
    A fresh `GANState` at step 0.
  """
  rng = jax.random.PRNGKey(config.seed)
  g_key, d_key, rng = jax.random.split(rng, 3)
  size = config.data.image_size
  lr_factor = schedules.lr_scheduled(config)
  g = _init_train_state(
      generator,
      make_optimizer(config.optim, 'g', lr_factor),
      g_key,
      jnp.zeros((1, config.model.z_dim), jnp.float32),
  )
  d = _init_train_state(
      discriminator,
      make_optimizer(
          config.optim, 'd', lr_factor, schedules.lazy_reg_ratio(config, 'd')
      ),
      d_key,
      jnp.zeros((1, size, size, 3), jnp.float32),
  )
  ada = config.data.ada_target > 0
  # ADA starts from p = 0, as stylegan2-ada-pytorch does (augment_p=0).
  aug_p = 0.0 if ada else schedules.base_aug_p(config)
  aug_p = schedules.aug_p(config, 0, aug_p)
  return GANState(
      step=jnp.zeros((), jnp.int32),
      g=g,
      d=d,
      ema_params=g.params,
      rng=rng,
      aug_p=jnp.asarray(aug_p, jnp.float32),
      ada_stats=jnp.zeros((2,), jnp.float32) if ada else None,
  )


def set_hyperparams(ts: TrainState, values: dict[str, Any]) -> TrainState:
  """Returns `ts` with injected hyperparameters replaced by `values`.

  Each value keeps the dtype of the hyperparameter it replaces, so the
  state's structure (and the compiled step) is unchanged.
  """
  if not values:
    return ts
  hp = dict(ts.opt_state.hyperparams)
  for name, value in values.items():
    hp[name] = jnp.asarray(value, hp[name].dtype)
  return ts.replace(opt_state=ts.opt_state._replace(hyperparams=hp))


def scale_learning_rate(ts: TrainState, factor: float) -> TrainState:
  """Returns `ts` with the injected learning rate multiplied by `factor`."""
  return set_hyperparams(
      ts, {'learning_rate': ts.opt_state.hyperparams['learning_rate'] * factor}
  )


def learning_rate(ts: TrainState) -> jax.Array:
  """The learning rate of the last update (with its schedule factor)."""
  hp = ts.opt_state.hyperparams
  return hp['learning_rate'] * hp.get('lr_factor', 1.0)
