"""Inference: a trained run's generator, as a function of latents.

The one home of sampling: `make_sample_fn` is the EMA generator in inference
mode (used by the trainer's sample grids and scorer), `load_generator` loads
a run's checkpoint for the CLIs (`generate`, `evaluate`).

BatchNorm running statistics are the live generator's, accumulated with its
own weights; the EMA weights never ran in training mode, so with an EMA the
statistics do not belong to them. `make_sampling_state_fn` gives them their
own: BigGAN's standing statistics (Brock et al. 2019; BigGAN-PyTorch's
`utils.accumulate_standing_stats`), the plain average of the batch means and
variances of `eval.standing_stats_batches` forward passes in training mode
with the EMA weights. Those passes use a fixed key, so that two evaluations
differ only by the weights. The training state itself is never changed.
"""

from collections.abc import Callable
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from catgan_jax import checkpoint
from catgan_jax import cli
from catgan_jax import config_lib
from catgan_jax import models
from catgan_jax import schedules
from catgan_jax import state as state_lib


SampleFn = Callable[[state_lib.GANState, jax.Array], jax.Array]


def make_sample_fn(generator: nn.Module) -> SampleFn:
  """Returns `(state, z[, y]) -> images` using the EMA generator in eval mode.

  `y` are the class labels of a conditional generator; without them it
  takes the classes in blocks along the batch (models/conditioning.py).
  """

  def sample(
      state: state_lib.GANState, z: jax.Array, y: jax.Array | None = None
  ) -> jax.Array:
    return generator.apply(
        {'params': state.ema_params, 'batch_stats': state.g.batch_stats},
        z,
        train=False,
        **({} if y is None else {'y': y}),
    )

  return sample


def _is_bn_statistic(path) -> bool:
  """Whether a batch_stats leaf is a BatchNorm running mean or variance."""
  return getattr(path[-1], 'key', None) in ('mean', 'var')


def standing_batch_stats(
    generator: nn.Module,
    params: Any,
    batch_stats: Any,
    key: jax.Array,
    num_batches: int,
    batch_size: int,
    z_dim: int,
) -> Any:
  """BatchNorm statistics that belong to `params` (BigGAN's standing stats).

  Runs `num_batches` batches of z ~ N(0, I) through the generator in
  training mode and averages every BatchNorm layer's batch mean and batch
  variance over them (BigGAN-PyTorch resets the statistics and accumulates
  with momentum None, the same cumulative average). A BatchNorm layer
  reports `m * old + (1 - m) * batch`; one extra pass from old = 1 and old =
  0 gives each layer's (1 - m), so that any momentum works. Other state in
  ``batch_stats`` (spectral norm's ``u`` and ``sigma``, which a training
  pass replaces rather than averages) is returned as it is.

  Args:
    generator: the Linen generator.
    params: its (EMA) parameters.
    batch_stats: its current statistics (may be empty).
    key: PRNG key of the latents.
    num_batches: forward passes averaged (>= 1).
    batch_size: latents per pass.
    z_dim: latent size.

  Returns:
    New statistics of the same structure (`batch_stats` itself if empty).
  """
  if not jax.tree.leaves(batch_stats):
    return batch_stats

  def new_stats(start, z):
    _, mutated = generator.apply(
        {'params': params, 'batch_stats': start},
        z,
        train=True,
        mutable=['batch_stats'],
    )
    return mutated['batch_stats']

  def bn_filled(fill):
    return jax.tree_util.tree_map_with_path(
        lambda p, x: fill(x) if _is_bn_statistic(p) else x, batch_stats
    )

  zeros, ones = bn_filled(jnp.zeros_like), bn_filled(jnp.ones_like)
  keys = jax.random.split(key, num_batches)
  z0 = jax.random.normal(keys[0], (batch_size, z_dim), jnp.float32)
  # (1 - m) per statistic: new(1) - new(0) = m.
  weight = jax.tree.map(
      lambda a, b: 1.0 - (a - b), new_stats(ones, z0), new_stats(zeros, z0)
  )

  def add_batch(total, k):
    z = jax.random.normal(k, (batch_size, z_dim), jnp.float32)
    batch = jax.tree.map(jnp.divide, new_stats(zeros, z), weight)
    return jax.tree.map(jnp.add, total, batch), None

  total, _ = jax.lax.scan(add_batch, zeros, keys)
  return jax.tree_util.tree_map_with_path(
      lambda p, t, x: t / num_batches if _is_bn_statistic(p) else x,
      total,
      batch_stats,
  )


def uses_ema(config: ml_collections.ConfigDict) -> bool:
  """Whether the run keeps an EMA of G's weights (else ema = live weights)."""
  return config.train.ema_decay > 0 or schedules.ema_scheduled(config)


def make_sampling_state_fn(
    generator: nn.Module, config: ml_collections.ConfigDict
) -> Callable[[state_lib.GANState], state_lib.GANState]:
  """`state -> state` to sample from: the EMA weights' standing statistics.

  Args:
    generator: the Linen generator of the run.
    config: the run config (`eval.standing_stats_batches`, `batch_size`,
      `seed`, `model.z_dim`, the EMA fields).

  Returns:
    A function giving a copy of the state whose `g.batch_stats` are the
    standing statistics of `ema_params` (jit it); the identity when the run
    keeps no EMA or eval.standing_stats_batches = 0. Use its result at once:
    it shares arrays with the state, which the next train step donates.
  """
  # Configs saved before the field existed sampled with the live statistics.
  num_batches = config.eval.get('standing_stats_batches', 0)
  if not (uses_ema(config) and num_batches > 0):
    return lambda state: state
  key = jax.random.PRNGKey(config.seed + 3)

  def sampling_state(state: state_lib.GANState) -> state_lib.GANState:
    stats = standing_batch_stats(
        generator,
        state.ema_params,
        state.g.batch_stats,
        key,
        num_batches,
        config.batch_size,
        config.model.z_dim,
    )
    return state.replace(g=state.g.replace(batch_stats=stats))

  return sampling_state


def load_generator(
    workdir: str, step: str | int = 'latest'
) -> tuple[Any, Callable[[jax.Array], np.ndarray], int]:
  """Loads a run's generator for sampling, on whatever devices are present.

  Args:
    workdir: the run directory (holds config.json and checkpoints).
    step: 'latest', 'best' (lowest FID) or a step number.

  Returns:
    (config, sample, step): `sample(z)` maps latents [N, z_dim] to images
    in [-1, 1] with the EMA generator in inference mode (`sample(z, y)`
    with class labels y [N] for a conditional generator).

  Raises:
    cli.UserError: no such checkpoint in `workdir`.
  """
  config = config_lib.load_config(workdir)
  generator, discriminator = models.create_models(config)
  # Shapes only: the restore needs no initialised parameters.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(
          lambda: state_lib.create_state(config, generator, discriminator)
      ),
  )
  ckpt = checkpoint.Checkpointer(
      workdir,
      keep=config.keep_checkpoints,
      best_by='fid' if step == 'best' else '',
  )
  steps = ckpt.all_steps()
  if step == 'latest' and steps:
    # As the trainer resumes: the newest checkpoint that restores.
    state, chosen = ckpt.restore_newest(target)
    if chosen != max(steps):
      logging.warning('Using checkpoint %d, the newest that restores.', chosen)
    return _loaded(config, generator, state, chosen, ckpt)
  if step in ('latest', 'best'):
    chosen = ckpt.best_step() if step == 'best' else ckpt.latest_step()
  elif str(step).isdigit():
    chosen = int(step)
  else:
    raise cli.UserError(
        f"--step={step!r} must be 'latest', 'best' or a "
        'checkpoint step number'
    )
  if chosen is None or chosen not in steps:
    raise cli.UserError(
        f'no checkpoint step={step!r} in {ckpt.directory} '
        f'(available: {steps or "none"})'
    )
  try:
    state = ckpt.restore(chosen, target)
  except Exception as e:  # pylint: disable=broad-except
    lines = str(e).strip().splitlines()
    raise cli.UserError(
        f'checkpoint {chosen} in {ckpt.directory} cannot be restored '
        f'({type(e).__name__}: {lines[0] if lines else ""}); choose another '
        f'(available: {steps})'
    ) from None
  return _loaded(config, generator, state, chosen, ckpt)


def _loaded(config, generator, state, chosen, ckpt):
  """`load_generator`'s result from a restored state."""
  ckpt.close()
  state = jax.jit(make_sampling_state_fn(generator, config))(state)
  sample = jax.jit(make_sample_fn(generator))
  return config, lambda z, y=None: np.asarray(sample(state, z, y)), chosen
