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

import functools
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


def _critic_warmup(train: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """(n_warm, first_g, every_g) of train.warmup_*; n_warm = 0 is off."""
  return (train.get('warmup_d_steps_per_g_step', 0),
          train.get('warmup_g_steps', 0), train.get('warmup_every_g_steps', 0))


def _iterations_before(g_step: int, n_critic: int, n_warm: int, first_g: int,
                       every_g: int) -> int:
  """Iterations before the group of G update `g_step` (warm-up on)."""
  warm = min(g_step, first_g)
  # Multiples of every_g in [first_g, g_step) are warm-up groups too
  # (Python's floor division makes this right for first_g = 0 as well).
  if every_g > 0 and g_step > first_g:
    warm += (g_step - 1) // every_g - (first_g - 1) // every_g
  return warm * n_warm + (g_step - warm) * n_critic


def update_phase(config: ml_collections.ConfigDict, step: int) -> Phase:
  """Which networks iteration `step` updates.

  D is updated on every `train.d_every_k_steps`-th iteration (0, k, 2k, ...);
  G on the last of every `train.d_steps_per_g_step` iterations (n_critic - 1,
  2 n_critic - 1, ...), so that it meets a freshly trained critic.

  With train.warmup_d_steps_per_g_step = n_warm > 0 (the WGAN references'
  "trick": Deep-learning-with-cats WGAN.py, after Arjovsky's code), the
  group of G update j has n_warm iterations instead of n_critic when
  j < train.warmup_g_steps or j is a multiple of train.warmup_every_g_steps
  (100, 25 and 500 there: 100 critic iterations before each of the first 25
  and every 500th generator update).

  Args:
    config: the run config.
    step: the iteration number (the state's step before the update).

  Returns:
    (update_d, update_g).
  """
  k = config.train.d_every_k_steps
  n_critic = config.train.d_steps_per_g_step
  n_warm, first_g, every_g = _critic_warmup(config.train)
  if n_warm <= 0:
    return step % k == 0, step % n_critic == n_critic - 1
  before = functools.partial(_iterations_before, n_critic=n_critic,
                             n_warm=n_warm, first_g=first_g, every_g=every_g)
  # The G update whose group holds `step`: the largest j with
  # before(j) <= step, by bisection (before is increasing).
  lo, hi = 0, step + 1
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if before(mid) <= step else (lo, mid)
  return step % k == 0, before(lo + 1) - 1 == step


# The named keys of one iteration (see `iteration_keys`).
_KEY_NAMES = ('z', 'gp', 'noise_r', 'noise_f', 'noise_g', 'aug_r', 'aug_f',
              'aug_g')
# Keys of the generator step's own samples (train.g_samples != 'reuse'),
# folded in rather than split off so that the keys above, and with them
# every 'reuse' run, stay what they were.
_G_KEY_NAMES = ('z_g', 'noise_rg', 'aug_rg')
_G_KEY_SALT = 1 << 20

# train.g_samples: what the generator step is computed on.
G_SAMPLES = ('reuse', 'fresh_z', 'fresh_z_and_reals')


# loss.clip_mode: when WGAN weight clipping is applied.
CLIP_MODES = ('after_update', 'before_update')


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises a one-line ValueError for unusable step settings.

  Checks train.g_samples, loss.clip_mode and the critic warm-up fields.
  """
  clip_mode = config.loss.get('clip_mode', 'after_update')
  if clip_mode not in CLIP_MODES:
    raise ValueError(f'loss.clip_mode={clip_mode!r} is unknown; valid: '
                     f'{", ".join(CLIP_MODES)}')
  n_warm, first_g, every_g = _critic_warmup(config.train)
  for field, value in (('warmup_d_steps_per_g_step', n_warm),
                       ('warmup_g_steps', first_g),
                       ('warmup_every_g_steps', every_g)):
    if value < 0:
      raise ValueError(f'train.{field}={value!r} must be >= 0')
  if n_warm > 0 and not (first_g or every_g):
    raise ValueError(
        f'train.warmup_d_steps_per_g_step={n_warm!r} has no effect with '
        'train.warmup_g_steps=0 and train.warmup_every_g_steps=0')
  value = config.train.get('g_samples', 'reuse')
  if value not in G_SAMPLES:
    raise ValueError(f'train.g_samples={value!r} is unknown; valid: '
                     f'{", ".join(G_SAMPLES)}')
  if (value == 'fresh_z_and_reals'
      and not losses_lib.get_loss(config.loss.name).g_uses_real):
    raise ValueError(
        "train.g_samples='fresh_z_and_reals' draws real images the "
        f'generator loss of loss.name={config.loss.name!r} does not use; '
        "use 'fresh_z'")


def input_batch_size(config: ml_collections.ConfigDict) -> int:
  """Images the train step reads per iteration (global).

  config.batch_size, or twice that with train.g_samples='fresh_z_and_reals':
  the D and G updates then get disjoint real batches (see
  `make_train_step`).
  """
  fresh_reals = config.train.get('g_samples', 'reuse') == 'fresh_z_and_reals'
  return config.batch_size * (2 if fresh_reals else 1)


def iteration_keys(rng: jax.Array, step: jax.Array | int) -> dict[str,
                                                                   jax.Array]:
  """The PRNG keys of iteration `step`: `fold_in(rng, step)`, split by use.

  A function of the base key and the step alone, so a resumed run draws
  exactly what the uninterrupted run drew, and a replay of the step in
  another framework (`tools/torch_peer/peer_equivalence.py`) can feed it the same
  latents.
  """
  step_key = jax.random.fold_in(rng, step)
  keys = dict(zip(_KEY_NAMES, jax.random.split(step_key, len(_KEY_NAMES))))
  for i, name in enumerate(_G_KEY_NAMES):
    keys[name] = jax.random.fold_in(step_key, _G_KEY_SALT + i)
  return keys


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
  from catgan_jax import diffaugment  # pylint: disable=g-import-not-at-top
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

  The generator step is computed on (train.g_samples):
    'reuse': D's z, D's forward pass of G and D's (augmented) real batch: one
      forward pass of G serves both updates (the fast path; the DCGAN
      references do this, reusing D's fake batch for G).
    'fresh_z': a fresh z and a new forward pass of G (starting from the
      batch statistics D's pass left, as two train-mode passes of a torch G
      would), D's real batch for relativistic losses (the WGAN references).
    'fresh_z_and_reals': also a fresh real batch for the relativistic G
      losses (the RelativisticGAN code draws one). The step then reads
      2 * batch_size images: D gets the even rows, G the odd ones, so the
      split stays within each device's shard of the batch.

  Returns:
    `train_step(state, batch) -> (state, metrics)` where `batch` is the global
    uint8 image batch [`input_batch_size(config)`, S, S, 3] and metrics are
    scalars.
  """
  loss_cfg, train_cfg = config.loss, config.train
  g_samples = train_cfg.get('g_samples', 'reuse')
  clip_before = loss_cfg.get('clip_mode', 'after_update') == 'before_update'
  gan_loss = losses_lib.get_loss(loss_cfg.name)
  augment = _make_augment(config)
  z_dim = config.model.z_dim

  def d_logits(params, batch_stats, x):
    return discriminator.apply({'params': params, 'batch_stats': batch_stats},
                               x, train=True, mutable=_MUTABLE)

  def generate(params, batch_stats, z):
    return generator.apply({'params': params, 'batch_stats': batch_stats},
                           z, train=True, mutable=_MUTABLE)

  def noisy(x, keys, name):
    if keys['noise_std'] is None:
      return x  # No normal draws for a zero std (3 image-sized ones a step).
    return x + keys['noise_std'] * jax.random.normal(keys[name], x.shape)

  def d_real_input(x, keys):
    """What D sees of real images `x`: instance noise, then augmentation."""
    return augment(noisy(x, keys, 'noise_r'), keys['aug_r'], keys['aug_p'])

  def d_objective(d_params, d: TrainState, real, fake, keys):
    """D loss with penalties; also returns its logits and new batch stats.

    `real` and `fake` are D's inputs before noise and augmentation. The
    penalties are taken with respect to these un-augmented images, through
    the augmentation (and noise) of the reals, with the draw the loss uses,
    as stylegan2-ada-pytorch's R1 is (its augment_pipe runs inside D).
    """
    real_logits, mut = d_logits(d_params, d.batch_stats,
                                d_real_input(real, keys))
    fake_in = augment(noisy(fake, keys, 'noise_f'), keys['aug_f'],
                      keys['aug_p'])
    fake_logits, mut = d_logits(d_params, mut['batch_stats'], fake_in)
    loss = gan_loss.d_loss(real_logits, fake_logits, loss_cfg)
    aux = {}
    critic = lambda x: d_logits(d_params, mut['batch_stats'],
                                d_real_input(x, keys))[0]
    # R2 differentiates D at the fakes through the fakes' own draw.
    fake_critic = lambda x: d_logits(d_params, mut['batch_stats'], augment(
        noisy(x, keys, 'noise_f'), keys['aug_f'], keys['aug_p']))[0]
    if loss_cfg.gp_weight > 0:
      aux['gp'] = losses_lib.gradient_penalty(critic, real, fake, keys['gp'])
      loss = loss + loss_cfg.gp_weight * aux['gp']
    # 1.0 unless schedule.gamma_end_factor ramps the R1/R2 weights.
    gamma = keys['gamma_factor']
    if loss_cfg.r1_weight > 0:
      aux['r1'] = losses_lib.r1_penalty(critic, real)
      loss = loss + 0.5 * loss_cfg.r1_weight * gamma * aux['r1']
    if loss_cfg.r2_weight > 0:
      aux['r2'] = losses_lib.r2_penalty(fake_critic, fake)
      loss = loss + 0.5 * loss_cfg.r2_weight * gamma * aux['r2']
    return loss, (real_logits, fake_logits, mut['batch_stats'], aux)

  def d_update(d: TrainState, real, fake, keys):
    if loss_cfg.clip > 0 and clip_before:
      # As the WGAN references (Arjovsky's code, Deep-learning-with-cats
      # WGAN.py): clamp at the start of each critic iteration, so the
      # critic computes with clipped weights and G meets the critic as its
      # last update left it.
      d = d.replace(params=_clip_params(d.params, loss_cfg.clip))
    grad_fn = jax.value_and_grad(d_objective, has_aux=True)
    (loss, (real_logits, fake_logits, bs, aux)), grads = grad_fn(
        d.params, d, real, fake, keys)
    new_d = d.apply_gradients(grads=grads, batch_stats=bs)
    if loss_cfg.clip > 0 and not clip_before:
      new_d = new_d.replace(params=_clip_params(new_d.params, loss_cfg.clip))
    return new_d, loss, real_logits, fake_logits, optax.global_norm(grads), aux

  def d_skip(d: TrainState, real, fake, keys):
    loss, (real_logits, fake_logits, _, aux) = d_objective(
        d.params, d, real, fake, keys)
    return d, loss, real_logits, fake_logits, jnp.zeros(()), aux

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

  def g_update_fresh(g: TrainState, d: TrainState, z, g_mut, real, keys,
                     ema):
    """Updates G on its own forward pass of `z`, with its own real inputs."""

    def g_objective(g_params):
      fake, mut = generate(g_params, g_mut['batch_stats'], z)
      fake = augment(noisy(fake, keys, 'noise_g'), keys['aug_g'],
                     keys['aug_p'])
      fake_logits, _ = d_logits(d.params, d.batch_stats, fake)
      real_logits = None
      if gan_loss.g_uses_real:
        real_logits = jax.lax.stop_gradient(
            d_logits(d.params, d.batch_stats, real)[0])
      return gan_loss.g_loss(real_logits, fake_logits, loss_cfg), mut

    (loss, mut), grads = jax.value_and_grad(g_objective, has_aux=True)(
        g.params)
    new_g = g.apply_gradients(grads=grads, batch_stats=mut['batch_stats'])
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
    real_g = None
    if g_samples == 'fresh_z_and_reals':
      pairs = real.reshape((real.shape[0] // 2, 2) + real.shape[1:])
      real, real_g = pairs[:, 0], pairs[:, 1]
    z = latents(keys['z'], real.shape[0], z_dim)

    # One forward pass of G serves both updates: D sees its images as
    # constants, and G's update pulls its gradient back through the VJP
    # (same z and parameters: the same images and batch statistics).
    fake, g_vjp, g_mut = jax.vjp(
        lambda p: generate(p, g_state.batch_stats, z), g_state.params,
        has_aux=True)
    fake_const = jax.lax.stop_gradient(fake)
    update_d, update_g = phase
    new_d, d_loss, real_logits, fake_logits, d_gnorm, aux = (
        d_update if update_d else d_skip)(d_state, real, fake_const, keys)
    real_in = d_real_input(real, keys)

    # Generator: against the new D.
    if update_g and g_samples == 'reuse':
      new_g, new_ema, g_loss, g_gnorm = g_update(
          g_state, new_d, fake, g_vjp, g_mut, real_in, keys,
          state.ema_params)
    elif update_g:
      z_g = latents(keys['z_g'], real.shape[0], z_dim)
      if real_g is not None:
        real_in = augment(noisy(real_g, keys, 'noise_rg'), keys['aug_rg'],
                          aug_p)
      new_g, new_ema, g_loss, g_gnorm = g_update_fresh(
          g_state, new_d, z_g, g_mut, real_in, keys, state.ema_params)
    else:
      new_g, new_ema, g_loss, g_gnorm = g_skip(
          g_state, state.ema_params, real_logits, fake_logits, g_mut)

    ada_stats = state.ada_stats
    if config.data.ada_target > 0:
      # ADA: raise p while D is too sure of the reals, lower it otherwise,
      # every data.ada_interval iterations (stylegan2-ada's rule).
      from catgan_jax import diffaugment  # pylint: disable=g-import-not-at-top
      aug_p, ada_stats = diffaugment.ada_update(
          state.aug_p, ada_stats, state.step, real_logits, config.data.ada_target,
          config.data.ada_interval, config.data.ada_kimg)

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
                              ema_params=new_ema, aug_p=aug_p,
                              ada_stats=ada_stats)
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
