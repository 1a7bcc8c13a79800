"""The jitted GAN update: a discriminator update, then a generator update.

`make_train_step` returns a pure function `(state, batch) -> (state, metrics)`.
Randomness comes from `fold_in(state.rng, state.step)`, so the step is a
deterministic function of its inputs. Each loss holds the other network
constant. Which loss, penalties, clipping and augmentation are used is read
from the config once, when the step is built. Scheduled hyperparameters
(`schedules.py`: learning rate, Adam beta2, R1/R2 weight, augmentation
probability, EMA decay) are computed inside the step from `state.step`.

The update schedule (D every k-th iteration, G every n_critic-th) is static
in each program: `make_train_step` builds the step of one `Phase`, and
`ScheduledStep` keeps one compiled program per phase and picks it on the
host, which knows the step number. A `lax.cond` between update and skip
inside one program would be simpler, but on XLA:CPU it made the whole
DCGAN-64 step about 30x slower (67 s instead of 2.2 s at batch 64 on two
cores; measured with jax 0.10.2), although a cond runs one branch only.
"""

from typing import Any, Callable

from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from catgan_jax import losses as losses_lib
from catgan_jax import schedules
from catgan_jax import state as state_lib
from catgan_jax.state import GANState, TrainState

Metrics = dict[str, jax.Array]
StepFn = Callable[[GANState, jax.Array], tuple[GANState, Metrics]]
# (update_d, update_g): which networks one iteration updates.
Phase = tuple[bool, bool]
_MUTABLE = ['batch_stats']


def update_phase(config: ml_collections.ConfigDict, step: int) -> Phase:
  """Which networks iteration `step` updates.

  D is updated on every `train.d_every_k_steps`-th iteration (0, k, 2k, ...);
  G on the last of every `train.d_steps_per_g_step` iterations (n_critic - 1,
  2 n_critic - 1, ...), so that it meets a freshly trained critic.

  Args:
    config: the run config.
    step: the iteration number (the state's step before the update).

  Returns:
    (update_d, update_g).
  """
  k = config.train.d_every_k_steps
  n_critic = config.train.d_steps_per_g_step
  return step % k == 0, step % n_critic == n_critic - 1


# The named keys of one iteration (see `iteration_keys`).
_KEY_NAMES = ('z', 'gp', 'noise_r', 'noise_f', 'noise_g', 'aug_r', 'aug_f',
              'aug_g')


def iteration_keys(rng: jax.Array, step: jax.Array | int) -> dict[str,
                                                                   jax.Array]:
  """The PRNG keys of iteration `step`: `fold_in(rng, step)`, split by use.

  A function of the base key and the step alone, so a resumed run draws
  exactly what the uninterrupted run drew, and a replay of the step in
  another framework (`benchmarks/peer_equivalence.py`) can feed it the same
  latents.
  """
  keys = jax.random.split(jax.random.fold_in(rng, step), len(_KEY_NAMES))
  return dict(zip(_KEY_NAMES, keys))


def latents(key: jax.Array, batch_size: int, z_dim: int) -> jax.Array:
  """The generator's standard normal inputs z [batch_size, z_dim]."""
  return jax.random.normal(key, (batch_size, z_dim), jnp.float32)


def to_float_images(batch: jax.Array) -> jax.Array:
  """uint8 [0, 255] images -> float32 in [-1, 1]."""
  return batch.astype(jnp.float32) / 127.5 - 1.0


def _make_augment(config: ml_collections.ConfigDict) -> Callable[..., Any]:
  """Returns `(images, key, p) -> images`, the differentiable augmentation."""
  policy = config.data.diffaugment
  if not policy:
    return lambda x, key, p: x
  from catgan_jax.data import diffaugment  # pylint: disable=g-import-not-at-top
  return lambda x, key, p: diffaugment.diff_augment(x, key, policy, p)


def _noise_std(config: ml_collections.ConfigDict,
               step: jax.Array) -> jax.Array | None:
  """Instance-noise std, annealed linearly from loss.instance_noise to 0.

  None when instance noise is off: then the step draws no noise, and has no
  run-length constant, so runs of different lengths share one compiled step
  (and the persistent compilation cache).
  """
  if not config.loss.instance_noise:
    return None
  frac = 1.0 - step.astype(jnp.float32) / config.num_train_steps
  return config.loss.instance_noise * jnp.maximum(frac, 0.0)


def _clip_params(params: Any, bound: float) -> Any:
  return jax.tree.map(lambda p: jnp.clip(p, -bound, bound), params)


def _ema(ema: Any, params: Any, decay: float | jax.Array) -> Any:
  if isinstance(decay, (int, float)) and decay == 0:
    return params  # EMA off: no pass over the parameters every step.
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def make_train_step(config: ml_collections.ConfigDict, generator: nn.Module,
                    discriminator: nn.Module,
                    phase: Phase = (True, True)) -> StepFn:
  """Builds the pure train step for `config` and one update phase.

  Args:
    config: the run config (loss, train, data.diffaugment fields are read).
    generator: Linen generator module.
    discriminator: Linen discriminator module.
    phase: (update_d, update_g) of the iterations this step is used for
      (see `update_phase`); a network that is not updated keeps its
      parameters and optimiser state.

  Returns:
    `train_step(state, batch) -> (state, metrics)` where `batch` is the global
    uint8 image batch [B, S, S, 3] and metrics are scalars.
  """
  loss_cfg = config.loss
  gan_loss = losses_lib.get_loss(loss_cfg.name)
  augment = _make_augment(config)
  z_dim = config.model.z_dim

  def d_logits(params, batch_stats, x):
    return discriminator.apply({'params': params, 'batch_stats': batch_stats},
                               x, train=True, mutable=_MUTABLE)

  def generate(params, batch_stats, z):
    return generator.apply({'params': params, 'batch_stats': batch_stats},
                           z, train=True, mutable=_MUTABLE)

  def d_objective(d_params, d: TrainState, real, fake, keys):
    """D loss with penalties; also returns its logits and new batch stats."""
    real_logits, mut = d_logits(d_params, d.batch_stats, real)
    fake_logits, mut = d_logits(d_params, mut['batch_stats'], fake)
    loss = gan_loss.d_loss(real_logits, fake_logits, loss_cfg)
    aux = {}
    critic = lambda x: d_logits(d_params, mut['batch_stats'], x)[0]
    if loss_cfg.gp_weight > 0:
      aux['gp'] = losses_lib.gradient_penalty(critic, real, fake, keys['gp'])
      loss = loss + loss_cfg.gp_weight * aux['gp']
    # 1.0 unless schedule.gamma_end_factor ramps the R1/R2 weights.
    gamma = keys['gamma_factor']
    if loss_cfg.r1_weight > 0:
      aux['r1'] = losses_lib.r1_penalty(critic, real)
      loss = loss + 0.5 * loss_cfg.r1_weight * gamma * aux['r1']
    if loss_cfg.r2_weight > 0:
      aux['r2'] = losses_lib.r2_penalty(critic, fake)
      loss = loss + 0.5 * loss_cfg.r2_weight * gamma * aux['r2']
    return loss, (real_logits, fake_logits, mut['batch_stats'], aux)

  def d_update(d: TrainState, real, fake, keys):
    grad_fn = jax.value_and_grad(d_objective, has_aux=True)
    (loss, (real_logits, fake_logits, bs, aux)), grads = grad_fn(
        d.params, d, real, fake, keys)
    new_d = d.apply_gradients(grads=grads, batch_stats=bs)
    if loss_cfg.clip > 0:
      new_d = new_d.replace(params=_clip_params(new_d.params, loss_cfg.clip))
    return new_d, loss, real_logits, fake_logits, optax.global_norm(grads), aux

  def d_skip(d: TrainState, real, fake, keys):
    loss, (real_logits, fake_logits, _, aux) = d_objective(
        d.params, d, real, fake, keys)
    return d, loss, real_logits, fake_logits, jnp.zeros(()), aux

  def noisy(x, keys, name):
    if keys['noise_std'] is None:
      return x  # No normal draws for a zero std (3 image-sized ones a step).
    return x + keys['noise_std'] * jax.random.normal(keys[name], x.shape)

  def g_update(g: TrainState, d: TrainState, fake, g_vjp, g_mut, real, keys,
               ema):
    """Updates G through the D step's forward pass of G (`fake`, `g_vjp`)."""

    def g_objective(fake):
      fake = augment(noisy(fake, keys, 'noise_g'), keys['aug_g'],
                     keys['aug_p'])
      fake_logits, _ = d_logits(d.params, d.batch_stats, fake)
      real_logits = None
      if gan_loss.g_uses_real:
        real_logits = jax.lax.stop_gradient(
            d_logits(d.params, d.batch_stats, real)[0])
      return gan_loss.g_loss(real_logits, fake_logits, loss_cfg)

    # The chain rule by hand: dL/dfake through the new D, then G's VJP.
    loss, grad_fake = jax.value_and_grad(g_objective)(fake)
    (grads,) = g_vjp(grad_fake)
    new_g = g.apply_gradients(grads=grads, batch_stats=g_mut['batch_stats'])
    new_ema = _ema(ema, new_g.params, keys['ema_decay'])
    return new_g, new_ema, loss, optax.global_norm(grads)

  def g_skip(g: TrainState, ema, real_logits, fake_logits, g_mut):
    # Keep the BatchNorm statistics of the D step's generator forward pass,
    # so G's running statistics advance once per iteration either way; the
    # loss is reported from the D step's logits.
    loss = gan_loss.g_loss(real_logits, fake_logits, loss_cfg)
    return (g.replace(batch_stats=g_mut['batch_stats']), ema, loss,
            jnp.zeros(()))

  def train_step(state: GANState, batch: jax.Array) -> tuple[GANState, Metrics]:
    keys = iteration_keys(state.rng, state.step)
    keys['noise_std'] = _noise_std(config, state.step)
    # Scheduled values (see schedules.py); the plain config values when off.
    aug_p = schedules.aug_p(config, state.step, state.aug_p)
    keys['aug_p'] = aug_p
    keys['gamma_factor'] = schedules.gamma_factor(config, state.step)
    keys['ema_decay'] = schedules.ema_decay(config, state.step)
    g_state = state_lib.set_hyperparams(
        state.g, schedules.optimizer_hyperparams(config, 'g', state.step))
    d_state = state_lib.set_hyperparams(
        state.d, schedules.optimizer_hyperparams(config, 'd', state.step))
    real = to_float_images(batch)
    z = latents(keys['z'], real.shape[0], z_dim)

    # One forward pass of G serves both updates: D sees its images as
    # constants, and G's update pulls its gradient back through the VJP
    # (same z and parameters: the same images and batch statistics).
    fake, g_vjp, g_mut = jax.vjp(
        lambda p: generate(p, g_state.batch_stats, z), g_state.params,
        has_aux=True)
    fake_const = jax.lax.stop_gradient(fake)
    real_in = augment(noisy(real, keys, 'noise_r'), keys['aug_r'], aug_p)
    fake_in = augment(noisy(fake_const, keys, 'noise_f'), keys['aug_f'],
                      aug_p)
    update_d, update_g = phase
    new_d, d_loss, real_logits, fake_logits, d_gnorm, aux = (
        d_update if update_d else d_skip)(d_state, real_in, fake_in, keys)

    # Generator: against the new D.
    if update_g:
      new_g, new_ema, g_loss, g_gnorm = g_update(
          g_state, new_d, fake, g_vjp, g_mut, real_in, keys,
          state.ema_params)
    else:
      new_g, new_ema, g_loss, g_gnorm = g_skip(
          g_state, state.ema_params, real_logits, fake_logits, g_mut)

    if config.data.ada_target > 0:
      # ADA: raise p while D is too sure of the reals, lower it otherwise.
      overfit = jnp.mean(jnp.sign(real_logits))
      aug_p = jnp.clip(aug_p + config.data.ada_speed * jnp.sign(
          overfit - config.data.ada_target), 0.0, 1.0)

    real_acc, fake_acc = losses_lib.d_accuracy(real_logits, fake_logits)
    metrics = {
        'd_loss': d_loss,
        'g_loss': g_loss,
        'D_x': jnp.mean(jax.nn.sigmoid(real_logits)),
        'D_G_z': jnp.mean(jax.nn.sigmoid(fake_logits)),
        'd_real_logit': jnp.mean(real_logits),
        'd_fake_logit': jnp.mean(fake_logits),
        'd_real_acc': real_acc,
        'd_fake_acc': fake_acc,
        'd_grad_norm': d_gnorm,
        'g_grad_norm': g_gnorm,
        # Finite losses and gradients keep finite parameters finite (an
        # optimiser step of a finite gradient is finite), so this guards the
        # parameters without two more passes over them every step.
        'finite': (jnp.isfinite(d_loss) & jnp.isfinite(g_loss)
                   & jnp.isfinite(d_gnorm) & jnp.isfinite(g_gnorm)),
        **aux,
        **schedules.logged_values(config, state.step),
    }
    if config.data.diffaugment:
      metrics['aug_p'] = aug_p
    new_state = state.replace(step=state.step + 1, g=new_g, d=new_d,
                              ema_params=new_ema, aug_p=aug_p)
    return new_state, metrics

  return train_step


class ScheduledStep:
  """The train step as one compiled program per update phase.

  Call it as `step_fn(state, batch, step)` with the iteration number `step`
  (equal to `state.step`, known on the host without a device sync); it runs
  the program of `update_phase(config, step)`, compiling it on first use.
  Most configs have a single phase, and so a single program.
  """

  def __init__(self, config: ml_collections.ConfigDict,
               compile_phase: Callable[[Phase], StepFn]):
    """Args: the run config; `compile_phase(phase)` builds one program."""
    self._config = config
    self._compile_phase = compile_phase
    self._programs = {}

  def program(self, phase: Phase) -> StepFn:
    """The compiled program of `phase`."""
    if phase not in self._programs:
      self._programs[phase] = self._compile_phase(phase)
    return self._programs[phase]

  def __call__(self, state: GANState, batch: jax.Array,
               step: int) -> tuple[GANState, Metrics]:
    return self.program(update_phase(self._config, step))(state, batch)


def make_sample_fn(generator: nn.Module) -> Callable[[GANState, jax.Array],
                                                      jax.Array]:
  """Returns `(state, z) -> images` using the EMA generator in eval mode."""

  def sample(state: GANState, z: jax.Array) -> jax.Array:
    return generator.apply({'params': state.ema_params,
                            'batch_stats': state.g.batch_stats}, z,
                           train=False)

  return sample
