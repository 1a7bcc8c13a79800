"""The jitted GAN update: a discriminator update, then a generator update.

`make_train_step` returns a pure function `(state, batch) -> (state, metrics)`.
Randomness comes from `fold_in(state.rng, state.step)` (`iteration_keys`), so
the step is a deterministic function of its inputs. The pieces are module-level
functions of what they use: `Networks` (the modules, loss and augmentation,
read from the config once), the iteration's `Keys` and its `Hyperparams`
(the scheduled values of `schedules.py`: instance-noise std, augmentation
probability, R1/R2 weight factor, EMA decay). `d_objective` and `g_objective`
are the two losses, each holding the other network constant; `d_update` /
`d_skip` and `g_update_reuse` / `g_update_fresh` / `g_skip` the phases.

The update schedule (D every k-th iteration, G every n_critic-th) is static
in each program: `make_train_step` builds the step of one `Phase`, and
`ScheduledStep` keeps one compiled program per phase and picks it on the
host, which knows the step number. A `lax.cond` between update and skip
inside one program would be simpler, but on XLA:CPU it made the whole
DCGAN-64 step about 30x slower (67 s instead of 2.2 s at batch 64 on two
cores; measured with jax 0.10.2), although a cond runs one branch only.
"""

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from catgan_jax import ada
from catgan_jax import diffaugment
from catgan_jax import losses as losses_lib
from catgan_jax import schedules
from catgan_jax import state as state_lib
from catgan_jax.state import GANState, TrainState

Metrics = dict[str, jax.Array]
StepFn = Callable[[GANState, jax.Array], tuple[GANState, Metrics]]
# The named PRNG keys of one iteration (see `iteration_keys`).
Keys = dict[str, jax.Array]
_MUTABLE = ['batch_stats']


class Phase(NamedTuple):
  """Which networks one iteration updates (see `update_phase`)."""

  update_d: bool
  update_g: bool
  # Whether the iteration takes D's penalties (gp, r1, r2): always with
  # loss.reg_every = 1 (in D's loss); with lazy regularisation only on
  # every reg_every-th D update (their own optimiser step, see `d_reg`).
  regularize_d: bool = True


def _critic_warmup(train: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """(n_warm, first_g, every_g) of train.warmup_*; n_warm = 0 is off."""
  return (
      train.get('warmup_d_steps_per_g_step', 0),
      train.get('warmup_g_steps', 0),
      train.get('warmup_every_g_steps', 0),
  )


def _iterations_before(
    g_step: int, n_critic: int, n_warm: int, first_g: int, every_g: int
) -> int:
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

  With loss.reg_every = r > 1, D's penalties are taken on D updates 0, r,
  2r, ... only (regularize_d); otherwise on every iteration.

  Args:
    config: the run config.
    step: the iteration number (the state's step before the update).

  Returns:
    The `Phase` (update_d, update_g, regularize_d).
  """
  k = config.train.d_every_k_steps
  n_critic = config.train.d_steps_per_g_step
  n_warm, first_g, every_g = _critic_warmup(config.train)
  update_d = step % k == 0
  regularize_d = True
  if reg_every(config) > 1:
    # stylegan2-ada's Dreg phase runs when batch_idx % D_reg_interval == 0:
    # D updates 0, reg_every, 2 reg_every, ... (D update j is iteration j k).
    regularize_d = update_d and (step // k) % reg_every(config) == 0
  if n_warm <= 0:
    return Phase(update_d, step % n_critic == n_critic - 1, regularize_d)
  before = functools.partial(
      _iterations_before,
      n_critic=n_critic,
      n_warm=n_warm,
      first_g=first_g,
      every_g=every_g,
  )
  # The G update whose group holds `step`: the largest j with
  # before(j) <= step, by bisection (before is increasing).
  lo, hi = 0, step + 1
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if before(mid) <= step else (lo, mid)
  return Phase(update_d, before(lo + 1) - 1 == step, regularize_d)


def reg_every(config: ml_collections.ConfigDict) -> int:
  """loss.reg_every: D's penalties every this many D updates (1 = always)."""
  return config.loss.get('reg_every', 1)


# The named keys of one iteration (see `iteration_keys`).
_KEY_NAMES = (
    'z',
    'gp',
    'noise_r',
    'noise_f',
    'noise_g',
    'aug_r',
    'aug_f',
    'aug_g',
)
# Keys of the generator step's own samples (train.g_samples != 'reuse'),
# folded in rather than split off so that the keys above, and with them
# every 'reuse' run, stay what they were.
_G_KEY_NAMES = ('z_g', 'noise_rg', 'aug_rg', 'g_noise', 'g_noise_g')
_G_KEY_SALT = 1 << 20
# Keys of D's loss itself (FastGAN's random hinge margins and reconstructed
# quadrant), folded in as well.
_D_LOSS_KEY_NAMES = ('d_margin', 'd_part')
_D_LOSS_KEY_SALT = 1 << 22

# train.g_samples: what the generator step is computed on.
G_SAMPLES = ('reuse', 'fresh_z', 'fresh_z_and_reals')


# loss.clip_mode: when WGAN weight clipping is applied.
CLIP_MODES = ('after_update', 'before_update')


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises a one-line ValueError for unusable step settings.

  Checks train.g_samples, loss.clip_mode, loss.reg_every, data.augment
  and the critic warm-up fields.
  """
  ada.check_config(config)
  reg = reg_every(config)
  if not isinstance(reg, int) or reg < 1:
    raise ValueError(f'loss.reg_every={reg!r} must be an integer >= 1')
  penalties = ('gp_weight', 'r1_weight', 'r2_weight')
  if reg > 1 and not any(config.loss[name] > 0 for name in penalties):
    raise ValueError(
        f'loss.reg_every={reg} has no penalty to take: loss.gp_weight, '
        'loss.r1_weight and loss.r2_weight are all 0'
    )
  clip_mode = config.loss.get('clip_mode', 'after_update')
  if clip_mode not in CLIP_MODES:
    raise ValueError(
        f'loss.clip_mode={clip_mode!r} is unknown; valid: '
        f'{", ".join(CLIP_MODES)}'
    )
  n_warm, first_g, every_g = _critic_warmup(config.train)
  for field, value in (
      ('warmup_d_steps_per_g_step', n_warm),
      ('warmup_g_steps', first_g),
      ('warmup_every_g_steps', every_g),
  ):
    if value < 0:
      raise ValueError(f'train.{field}={value!r} must be >= 0')
  if n_warm > 0 and not (first_g or every_g):
    raise ValueError(
        f'train.warmup_d_steps_per_g_step={n_warm!r} has no effect with '
        'train.warmup_g_steps=0 and train.warmup_every_g_steps=0'
    )
  value = config.train.get('g_samples', 'reuse')
  if value not in G_SAMPLES:
    raise ValueError(
        f'train.g_samples={value!r} is unknown; valid: '
        f'{", ".join(G_SAMPLES)}'
    )
  if (
      value == 'fresh_z_and_reals'
      and not losses_lib.get_loss(config.loss.name).g_uses_real
  ):
    raise ValueError(
        "train.g_samples='fresh_z_and_reals' draws real images the "
        f'generator loss of loss.name={config.loss.name!r} does not use; '
        "use 'fresh_z'"
    )


def input_batch_size(config: ml_collections.ConfigDict) -> int:
  """Images the train step reads per iteration (global).

  config.batch_size, or twice that with train.g_samples='fresh_z_and_reals':
  the D and G updates then get disjoint real batches (see
  `make_train_step`).
  """
  fresh_reals = config.train.get('g_samples', 'reuse') == 'fresh_z_and_reals'
  return config.batch_size * (2 if fresh_reals else 1)


def iteration_keys(rng: jax.Array, step: jax.Array | int) -> Keys:
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
  for i, name in enumerate(_D_LOSS_KEY_NAMES):
    keys[name] = jax.random.fold_in(step_key, _D_LOSS_KEY_SALT + i)
  return keys


def latents(key: jax.Array, batch_size: int, z_dim: int) -> jax.Array:
  """The generator's standard normal inputs z [batch_size, z_dim]."""
  return jax.random.normal(key, (batch_size, z_dim), jnp.float32)


def to_float_images(batch: jax.Array) -> jax.Array:
  """uint8 [0, 255] images -> float32 in [-1, 1]."""
  return batch.astype(jnp.float32) / 127.5 - 1.0


def _make_augment(config: ml_collections.ConfigDict) -> Callable[..., Any]:
  """Returns `(images, key, p) -> images`, the differentiable augmentation."""
  if config.data.get('augment', 'diffaugment') == 'ada':
    pipe = ada.get_pipe(config.data.ada_pipe)
    return lambda x, key, p: ada.augment(x, key, p, pipe)
  policy = config.data.diffaugment
  if not policy:
    return lambda x, key, p: x
  return lambda x, key, p: diffaugment.diff_augment(x, key, policy, p)


class Hyperparams(NamedTuple):
  """The scheduled values of one iteration (see `hyperparams`)."""

  # Instance-noise std; None when instance noise is off (no normal draws).
  noise_std: jax.Array | None
  # Probability of each augmentation op.
  aug_p: jax.Array | float
  # Multiplier of loss.r1_weight and loss.r2_weight.
  gamma_factor: jax.Array | float
  # The generator EMA's decay (a Python 0 when the EMA is off).
  ema_decay: jax.Array | float


def _noise_std(
    config: ml_collections.ConfigDict, step: jax.Array
) -> jax.Array | None:
  """Instance-noise std, annealed linearly from loss.instance_noise to 0.

  None when instance noise is off: then the step draws no noise, and has no
  run-length constant, so runs of different lengths share one compiled step
  (and the persistent compilation cache).
  """
  if not config.loss.instance_noise:
    return None
  frac = 1.0 - step.astype(jnp.float32) / config.num_train_steps
  return config.loss.instance_noise * jnp.maximum(frac, 0.0)


def hyperparams(
    config: ml_collections.ConfigDict, step: jax.Array, aug_p: jax.Array
) -> Hyperparams:
  """The scheduled values of iteration `step` (the plain config values when
  a schedule is off); `aug_p` is the state's augmentation probability."""
  return Hyperparams(
      noise_std=_noise_std(config, step),
      aug_p=schedules.aug_p(config, step, aug_p),
      gamma_factor=schedules.gamma_factor(config, step),
      ema_decay=schedules.ema_decay(config, step),
  )


@dataclasses.dataclass(frozen=True)
class Networks:
  """What the update reads from the config once: modules, loss, augmentation.

  Attributes:
    generator: Linen generator module.
    discriminator: Linen discriminator module.
    loss_cfg: config.loss (penalty weights, clipping, labels, margins).
    gan_loss: the `losses.GANLoss` of loss_cfg.name.
    augment: `(images, key, p) -> images`, the differentiable augmentation.
    d_frozen: D's ``frozen`` variables (the state's `d.frozen`, bound per
      step by `bind_frozen`); None for a D without them.
    labels: the class labels [B] every pass of G and D in the step
      conditions on (bound per step by `bind_labels`); None when
      unconditional.
    d_reconstructs: D is self-supervised (FastGAN's): called with a
      quadrant `part` on the reals of its loss, it also returns its
      reconstruction loss, which D's loss adds.
  """

  generator: nn.Module
  discriminator: nn.Module
  loss_cfg: ml_collections.ConfigDict
  gan_loss: losses_lib.GANLoss
  augment: Callable[..., Any]
  d_frozen: Any = None
  labels: jax.Array | None = None
  d_reconstructs: bool = False

  @classmethod
  def from_config(
      cls,
      config: ml_collections.ConfigDict,
      generator: nn.Module,
      discriminator: nn.Module,
  ) -> 'Networks':
    return cls(
        generator=generator,
        discriminator=discriminator,
        loss_cfg=config.loss,
        gan_loss=losses_lib.get_loss(config.loss.name),
        augment=_make_augment(config),
        d_reconstructs=getattr(discriminator, 'RECONSTRUCTS', False),
    )

  def bind_frozen(self, d: TrainState) -> 'Networks':
    """These networks with D's frozen variables of the state `d`."""
    return dataclasses.replace(self, d_frozen=d.frozen)

  def bind_labels(self, labels: jax.Array | None) -> 'Networks':
    """These networks conditioned on the class `labels` (None: none)."""
    return dataclasses.replace(self, labels=labels)

  def _label_kwargs(self) -> dict[str, jax.Array]:
    # Unconditional networks are called exactly as before: no `y` at all.
    return {} if self.labels is None else {'y': self.labels}

  def d_apply(self, params, batch_stats, x, part=None):
    """D's logits of `x` in train mode, and its new batch statistics.

    With `part` (a self-supervised D, see `d_reconstructs`), D's output is
    (logits, reconstruction loss).
    """
    variables = {'params': params, 'batch_stats': batch_stats}
    if self.d_frozen is not None:
      variables['frozen'] = self.d_frozen
    kwargs = self._label_kwargs()
    if part is not None:
      kwargs['part'] = part
    return self.discriminator.apply(
        variables,
        x,
        train=True,
        mutable=_MUTABLE,
        **kwargs,
    )

  def g_apply(self, params, batch_stats, z, noise_key=None):
    """G's images of `z` in train mode, and its new batch statistics.

    `noise_key` feeds a generator's ``'noise'`` stream (FastGAN's noise
    injection); generators without one ignore it.
    """
    return self.generator.apply(
        {'params': params, 'batch_stats': batch_stats},
        z,
        train=True,
        mutable=_MUTABLE,
        rngs=None if noise_key is None else {'noise': noise_key},
        **self._label_kwargs(),
    )


def d_view(
    nets: Networks,
    x: jax.Array,
    noise_key: jax.Array,
    aug_key: jax.Array,
    hp: Hyperparams,
) -> jax.Array:
  """What D sees of images `x`: instance noise, then augmentation."""
  if hp.noise_std is not None:  # No normal draws for a zero std.
    x = x + hp.noise_std * jax.random.normal(noise_key, x.shape)
  return nets.augment(x, aug_key, hp.aug_p)


def d_objective(
    nets: Networks,
    d_params: Any,
    batch_stats: Any,
    real: jax.Array,
    fake: jax.Array,
    keys: Keys,
    hp: Hyperparams,
    penalize: bool = True,
) -> tuple[jax.Array, tuple[Any, ...]]:
  """D's loss with its penalties (unless not `penalize`), G held constant.

  `real` and `fake` are D's inputs before noise and augmentation; see
  `add_penalties` for the penalties.

  Returns:
    (loss, (real_logits, fake_logits, new batch_stats, {penalty name: value})).
  """
  cfg = nets.loss_cfg
  real_view = lambda x: d_view(nets, x, keys['noise_r'], keys['aug_r'], hp)
  fake_view = lambda x: d_view(nets, x, keys['noise_f'], keys['aug_f'], hp)
  aux = {}
  if nets.d_reconstructs:
    # FastGAN's train_d: one random quadrant per batch.
    part = jax.random.randint(keys['d_part'], (), 0, 4)
    (real_logits, aux['reconstruction']), mut = nets.d_apply(
        d_params, batch_stats, real_view(real), part
    )
  else:
    real_logits, mut = nets.d_apply(d_params, batch_stats, real_view(real))
  fake_logits, mut = nets.d_apply(d_params, mut['batch_stats'], fake_view(fake))
  loss = nets.gan_loss.d_value(real_logits, fake_logits, cfg, keys['d_margin'])
  if nets.d_reconstructs:
    loss = loss + aux['reconstruction']
  if penalize:
    loss, penalties = add_penalties(
        nets, loss, d_params, mut['batch_stats'], real, fake, keys, hp
    )
    aux.update(penalties)
  return loss, (real_logits, fake_logits, mut['batch_stats'], aux)


def add_penalties(
    nets: Networks,
    loss: jax.Array | float,
    d_params: Any,
    batch_stats: Any,
    real: jax.Array,
    fake: jax.Array,
    keys: Keys,
    hp: Hyperparams,
    gain: int | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`loss` plus D's penalties (gp, r1, r2: those whose weight is > 0).

  The penalties are taken with respect to the un-augmented `real` and
  `fake`, through the noise and augmentation of the loss's own draw (the
  reals' draw for GP and R1, the fakes' for R2), as stylegan2-ada-pytorch's
  R1 is (its augment_pipe runs inside D). `gain` multiplies their weights
  (lazy regularisation's interval; None = 1).

  Returns:
    (loss with the weighted penalties, {penalty name: value}).
  """
  cfg = nets.loss_cfg
  real_view = lambda x: d_view(nets, x, keys['noise_r'], keys['aug_r'], hp)
  fake_view = lambda x: d_view(nets, x, keys['noise_f'], keys['aug_f'], hp)
  critic = lambda x: nets.d_apply(d_params, batch_stats, real_view(x))[0]
  fake_critic = lambda x: nets.d_apply(d_params, batch_stats, fake_view(x))[0]
  weighted = lambda weight: weight if gain is None else gain * weight
  aux = {}
  if cfg.gp_weight > 0:
    aux['gp'] = losses_lib.gradient_penalty(critic, real, fake, keys['gp'])
    loss = loss + weighted(cfg.gp_weight) * aux['gp']
  if cfg.r1_weight > 0:
    aux['r1'] = losses_lib.r1_penalty(critic, real)
    loss = loss + weighted(0.5 * cfg.r1_weight * hp.gamma_factor) * aux['r1']
  if cfg.r2_weight > 0:
    aux['r2'] = losses_lib.r2_penalty(fake_critic, fake)
    loss = loss + weighted(0.5 * cfg.r2_weight * hp.gamma_factor) * aux['r2']
  return loss, aux


def g_objective(
    nets: Networks,
    fake: jax.Array,
    d: TrainState,
    real_in: jax.Array | None,
    keys: Keys,
    hp: Hyperparams,
) -> tuple[jax.Array, Any]:
  """G's loss of its images `fake` against D (D's parameters held constant).

  `real_in` is D's view of a real batch (noised and augmented), which the
  relativistic losses compare with; the others ignore it. D runs in
  training mode, fakes first, then reals, as the references' G steps run
  it; like theirs, its passes advance D's state: BatchNorm's running
  statistics and spectral norm's power iteration (torch's spectral_norm
  updates u in every training-mode forward pass).

  Returns:
    (loss, D's batch_stats after these passes).
  """
  fake_logits, mut = nets.d_apply(
      d.params,
      d.batch_stats,
      d_view(nets, fake, keys['noise_g'], keys['aug_g'], hp),
  )
  real_logits = None
  if nets.gan_loss.g_uses_real:
    real_logits, mut = nets.d_apply(d.params, mut['batch_stats'], real_in)
    real_logits = jax.lax.stop_gradient(real_logits)
  loss = nets.gan_loss.g_loss(real_logits, fake_logits, nets.loss_cfg)
  return loss, jax.lax.stop_gradient(mut['batch_stats'])


def _clip_params(params: Any, bound: float) -> Any:
  return jax.tree.map(lambda p: jnp.clip(p, -bound, bound), params)


def _ema(ema: Any, params: Any, decay: float | jax.Array) -> Any:
  if isinstance(decay, (int, float)) and decay == 0:
    return params  # EMA off: no pass over the parameters every step.
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


# What a D phase returns: (new D, loss, real logits, fake logits, gradient
# norm, penalties).
DResult = tuple[
    TrainState, jax.Array, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]
]
# What a G phase returns: (new G, new EMA params, loss, gradient norm, D's
# batch_stats after the phase's passes of D).
GResult = tuple[TrainState, Any, jax.Array, jax.Array, Any]


def d_update(
    nets: Networks,
    d: TrainState,
    real: jax.Array,
    fake: jax.Array,
    keys: Keys,
    hp: Hyperparams,
    penalize: bool = True,
) -> DResult:
  """One optimiser step of D on `real` and the constant `fake`.

  Its loss holds the penalties unless not `penalize` (lazy regularisation
  takes them in `d_reg`).
  """
  cfg = nets.loss_cfg
  clip_before = cfg.get('clip_mode', 'after_update') == 'before_update'
  if cfg.clip > 0 and clip_before:
    # As the WGAN references (Arjovsky's code, Deep-learning-with-cats
    # WGAN.py): clamp at the start of each critic iteration, so the critic
    # computes with clipped weights and G meets the critic as its last
    # update left it.
    d = d.replace(params=_clip_params(d.params, cfg.clip))
  grad_fn = jax.value_and_grad(d_objective, argnums=1, has_aux=True)
  (loss, (real_logits, fake_logits, bs, aux)), grads = grad_fn(
      nets, d.params, d.batch_stats, real, fake, keys, hp, penalize
  )
  new_d = d.apply_gradients(grads=grads, batch_stats=bs)
  if cfg.clip > 0 and not clip_before:
    new_d = new_d.replace(params=_clip_params(new_d.params, cfg.clip))
  return new_d, loss, real_logits, fake_logits, optax.global_norm(grads), aux


def d_skip(
    nets: Networks,
    d: TrainState,
    real: jax.Array,
    fake: jax.Array,
    keys: Keys,
    hp: Hyperparams,
    penalize: bool = True,
) -> DResult:
  """D's loss and logits without an update (iterations that skip D)."""
  loss, (real_logits, fake_logits, _, aux) = d_objective(
      nets, d.params, d.batch_stats, real, fake, keys, hp, penalize
  )
  return d, loss, real_logits, fake_logits, jnp.zeros(()), aux


# Salt of the keys of the regularisation step's own draws (`d_reg`).
_REG_KEY_SALT = 1 << 21
_REG_KEY_NAMES = ('gp', 'noise_r', 'noise_f', 'aug_r', 'aug_f')


def d_reg(
    nets: Networks,
    d: TrainState,
    real: jax.Array,
    fake: jax.Array,
    keys: Keys,
    hp: Hyperparams,
    gain: int,
) -> tuple[TrainState, jax.Array, jax.Array, dict[str, jax.Array]]:
  """Lazy regularisation: one optimiser step of D on its penalties alone.

  stylegan2-ada-pytorch's ``Dreg`` phase (training/loss.py,
  training/training_loop.py): after the main D step of every `gain`-th D
  update, a step on the penalties with their weights times `gain`, at D's
  new parameters, with new draws of the noise and augmentation (the
  reference calls its augment pipe again). The penalty passes' batch
  statistics are dropped, as in `d_objective`.

  Returns:
    (new D, the weighted penalty loss, its gradient norm, {name: value}).
  """
  cfg = nets.loss_cfg
  keys = {
      **keys,
      **{
          name: jax.random.fold_in(keys[name], _REG_KEY_SALT)
          for name in _REG_KEY_NAMES
      },
  }
  clip_before = cfg.get('clip_mode', 'after_update') == 'before_update'
  if cfg.clip > 0 and clip_before:
    d = d.replace(params=_clip_params(d.params, cfg.clip))
  objective = lambda params: add_penalties(
      nets, 0.0, params, d.batch_stats, real, fake, keys, hp, gain
  )
  (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(d.params)
  new_d = d.apply_gradients(grads=grads)
  if cfg.clip > 0 and not clip_before:
    new_d = new_d.replace(params=_clip_params(new_d.params, cfg.clip))
  return new_d, loss, optax.global_norm(grads), aux


def g_update_reuse(
    nets: Networks,
    g: TrainState,
    d: TrainState,
    fake: jax.Array,
    g_vjp: Callable[..., Any],
    g_mut: Any,
    real_in: jax.Array,
    keys: Keys,
    hp: Hyperparams,
    ema: Any,
) -> GResult:
  """Updates G through the D phase's forward pass of G (`fake`, `g_vjp`)."""
  # The chain rule by hand: dL/dfake through the new D, then G's VJP.
  (loss, d_stats), grad_fake = jax.value_and_grad(
      lambda x: g_objective(nets, x, d, real_in, keys, hp), has_aux=True
  )(fake)
  (grads,) = g_vjp(grad_fake)
  new_g = g.apply_gradients(grads=grads, batch_stats=g_mut['batch_stats'])
  return (
      new_g,
      _ema(ema, new_g.params, hp.ema_decay),
      loss,
      optax.global_norm(grads),
      d_stats,
  )


def g_update_fresh(
    nets: Networks,
    g: TrainState,
    d: TrainState,
    z: jax.Array,
    g_mut: Any,
    real_in: jax.Array,
    keys: Keys,
    hp: Hyperparams,
    ema: Any,
) -> GResult:
  """Updates G on its own forward pass of `z`, with its own real inputs.

  The pass starts from the batch statistics the D phase's pass left, as two
  train-mode passes of a torch G would.
  """

  def loss_fn(g_params):
    fake, mut = nets.g_apply(
        g_params, g_mut['batch_stats'], z, keys['g_noise_g']
    )
    loss, d_stats = g_objective(nets, fake, d, real_in, keys, hp)
    return loss, (mut, d_stats)

  (loss, (mut, d_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      g.params
  )
  new_g = g.apply_gradients(grads=grads, batch_stats=mut['batch_stats'])
  return (
      new_g,
      _ema(ema, new_g.params, hp.ema_decay),
      loss,
      optax.global_norm(grads),
      d_stats,
  )


def g_skip(
    nets: Networks,
    g: TrainState,
    d: TrainState,
    ema: Any,
    real_logits: jax.Array,
    fake_logits: jax.Array,
    g_mut: Any,
) -> GResult:
  """G unchanged (iterations that skip G); its loss from D's logits.

  Keeps the batch statistics of the D phase's forward pass of G, so that G's
  running statistics advance once per iteration either way; D is not run.
  """
  loss = nets.gan_loss.g_loss(real_logits, fake_logits, nets.loss_cfg)
  return (
      g.replace(batch_stats=g_mut['batch_stats']),
      ema,
      loss,
      jnp.zeros(()),
      d.batch_stats,
  )


def _step_metrics(
    d_loss, g_loss, real_logits, fake_logits, d_gnorm, g_gnorm
) -> Metrics:
  real_acc, fake_acc = losses_lib.d_accuracy(real_logits, fake_logits)
  return {
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
      'finite': (
          jnp.isfinite(d_loss)
          & jnp.isfinite(g_loss)
          & jnp.isfinite(d_gnorm)
          & jnp.isfinite(g_gnorm)
      ),
  }


def make_train_step(
    config: ml_collections.ConfigDict,
    generator: nn.Module,
    discriminator: nn.Module,
    phase: Phase = Phase(True, True),
) -> StepFn:
  """Builds the pure train step for `config` and one update phase.

  Args:
    config: the run config (loss, train, data augmentation fields are read).
    generator: Linen generator module.
    discriminator: Linen discriminator module.
    phase: which networks the iterations this step is used for update (see
      `update_phase`); a network that is not updated keeps its parameters
      and optimiser state.

  The generator step is computed on (train.g_samples):
    'reuse': D's z, D's forward pass of G and D's (augmented) real batch: one
      forward pass of G serves both updates (the fast path; the DCGAN
      references do this, reusing D's fake batch for G).
    'fresh_z': a fresh z and a new forward pass of G, D's real batch for
      relativistic losses (the WGAN references).
    'fresh_z_and_reals': also a fresh real batch for the relativistic G
      losses (the RelativisticGAN code draws one). The step then reads
      2 * batch_size images: D gets the even rows, G the odd ones, so the
      split stays within each device's shard of the batch.

  Returns:
    `train_step(state, batch) -> (state, metrics)` where `batch` is the global
    uint8 image batch [`input_batch_size(config)`, S, S, 3] (with
    data.num_classes > 0 a pair of it and the int32 labels
    [`input_batch_size(config)`]) and metrics are scalars.
  """
  nets_unbound = Networks.from_config(config, generator, discriminator)
  g_samples = config.train.get('g_samples', 'reuse')
  z_dim = config.model.z_dim
  phase = Phase(*phase)
  # Lazy regularisation's interval (the penalties' gain), or 0 when off.
  lazy = reg_every(config) if reg_every(config) > 1 else 0
  # A conditional batch is (uint8 images, int32 labels).
  conditional = config.data.get('num_classes', 0) > 0

  def train_step(state: GANState, batch: Any) -> tuple[GANState, Metrics]:
    labels = labels_g = None
    if conditional:
      batch, labels = batch
    nets = nets_unbound.bind_frozen(state.d)
    keys = iteration_keys(state.rng, state.step)
    hp = hyperparams(config, state.step, state.aug_p)
    g_state = state_lib.set_hyperparams(
        state.g, schedules.optimizer_hyperparams(config, 'g', state.step)
    )
    d_state = state_lib.set_hyperparams(
        state.d, schedules.optimizer_hyperparams(config, 'd', state.step)
    )
    real = to_float_images(batch)
    real_g = None
    if g_samples == 'fresh_z_and_reals':
      pairs = real.reshape((real.shape[0] // 2, 2) + real.shape[1:])
      real, real_g = pairs[:, 0], pairs[:, 1]
      if conditional:
        labels, labels_g = labels[0::2], labels[1::2]
    # G's fakes take the real batch's labels: every batch then has the
    # data's class frequencies on both sides of D's comparison.
    nets = nets.bind_labels(labels)
    z = latents(keys['z'], real.shape[0], z_dim)

    # One forward pass of G serves both updates: D sees its images as
    # constants, and G's update pulls its gradient back through the VJP
    # (same z and parameters: the same images and batch statistics).
    fake, g_vjp, g_mut = jax.vjp(
        lambda p: nets.g_apply(p, g_state.batch_stats, z, keys['g_noise']),
        g_state.params,
        has_aux=True,
    )
    new_d, d_loss, real_logits, fake_logits, d_gnorm, aux = (
        d_update if phase.update_d else d_skip
    )(nets, d_state, real, jax.lax.stop_gradient(fake), keys, hp, not lazy)
    reg_metrics = {}
    if lazy and phase.update_d and phase.regularize_d:
      new_d, reg_loss, reg_gnorm, aux = d_reg(
          nets, new_d, real, jax.lax.stop_gradient(fake), keys, hp, lazy
      )
      reg_metrics = {'d_reg_loss': reg_loss, 'd_reg_grad_norm': reg_gnorm}
    real_in = d_view(nets, real, keys['noise_r'], keys['aug_r'], hp)

    # Generator: against the new D.
    if phase.update_g and g_samples == 'reuse':
      new_g, new_ema, g_loss, g_gnorm, d_stats = g_update_reuse(
          nets,
          g_state,
          new_d,
          fake,
          g_vjp,
          g_mut,
          real_in,
          keys,
          hp,
          state.ema_params,
      )
    elif phase.update_g:
      z_g = latents(keys['z_g'], real.shape[0], z_dim)
      g_nets = nets
      if real_g is not None:
        real_in = d_view(nets, real_g, keys['noise_rg'], keys['aug_rg'], hp)
        if conditional:
          g_nets = nets.bind_labels(labels_g)
      new_g, new_ema, g_loss, g_gnorm, d_stats = g_update_fresh(
          g_nets,
          g_state,
          new_d,
          z_g,
          g_mut,
          real_in,
          keys,
          hp,
          state.ema_params,
      )
    else:
      new_g, new_ema, g_loss, g_gnorm, d_stats = g_skip(
          nets,
          g_state,
          new_d,
          state.ema_params,
          real_logits,
          fake_logits,
          g_mut,
      )
    new_d = new_d.replace(batch_stats=d_stats)

    aug_p, ada_stats = hp.aug_p, state.ada_stats
    if config.data.ada_target > 0:
      # ADA: raise p while D is too sure of the reals, lower it otherwise,
      # every data.ada_interval iterations (stylegan2-ada's rule).
      aug_p, ada_stats = diffaugment.ada_update(
          state.aug_p,
          ada_stats,
          state.step,
          real_logits,
          config.data.ada_target,
          config.data.ada_interval,
          config.data.ada_kimg,
      )

    metrics = {
        **_step_metrics(
            d_loss, g_loss, real_logits, fake_logits, d_gnorm, g_gnorm
        ),
        **aux,
        **schedules.logged_values(config, state.step),
    }
    if reg_metrics:
      metrics.update(reg_metrics)
      metrics['finite'] &= jnp.isfinite(reg_metrics['d_reg_loss']) & (
          jnp.isfinite(reg_metrics['d_reg_grad_norm'])
      )
    if schedules.augmenting(config):
      metrics['aug_p'] = aug_p
    new_state = state.replace(
        step=state.step + 1,
        g=new_g,
        d=new_d,
        ema_params=new_ema,
        aug_p=aug_p,
        ada_stats=ada_stats,
    )
    return new_state, metrics

  return train_step


class ScheduledStep:
  """The train step as one compiled program per update phase.

  Call it as `step_fn(state, batch, step)` with the iteration number `step`
  (equal to `state.step`, known on the host without a device sync); it runs
  the program of `update_phase(config, step)`, compiling it on first use.
  Most configs have a single phase, and so a single program.
  """

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      compile_phase: Callable[[Phase], StepFn],
  ):
    """Args: the run config; `compile_phase(phase)` builds one program."""
    self._config = config
    self._compile_phase = compile_phase
    self._programs = {}

  def program(self, phase: Phase) -> StepFn:
    """The compiled program of `phase`."""
    phase = Phase(*phase)
    if phase not in self._programs:
      self._programs[phase] = self._compile_phase(phase)
    return self._programs[phase]

  def precompile(self, step: int) -> None:
    """Compiles the program iteration `step` runs, if not compiled yet."""
    self.program(update_phase(self._config, step))

  def __call__(
      self, state: GANState, batch: jax.Array, step: int
  ) -> tuple[GANState, Metrics]:
    return self.program(update_phase(self._config, step))(state, batch)
