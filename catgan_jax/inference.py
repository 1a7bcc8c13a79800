"""Inference: a trained run's generator, as a function of latents.

The one home of sampling: `make_sample_fn` is the EMA generator in inference
mode (used by the trainer's sample grids and scorer), `load_generator` loads
a run's checkpoint for the CLIs (`generate`, `evaluate`).
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from catgan_jax import checkpoint
from catgan_jax import cli
from catgan_jax import config_lib
from catgan_jax import models
from catgan_jax import state as state_lib


SampleFn = Callable[[state_lib.GANState, jax.Array], jax.Array]


def make_sample_fn(generator: nn.Module) -> SampleFn:
  """Returns `(state, z) -> images` using the EMA generator in eval mode."""

  def sample(state: state_lib.GANState, z: jax.Array) -> jax.Array:
    return generator.apply(
        {'params': state.ema_params, 'batch_stats': state.g.batch_stats},
        z,
        train=False,
    )

  return sample


def load_generator(
    workdir: str, step: str | int = 'latest'
) -> tuple[Any, Callable[[jax.Array], np.ndarray], int]:
  """Loads a run's generator for sampling, on whatever devices are present.

  Args:
    workdir: the run directory (holds config.json and checkpoints).
    step: 'latest', 'best' (lowest FID) or a step number.

  Returns:
    (config, sample, step): `sample(z)` maps latents [N, z_dim] to images
    in [-1, 1] with the EMA generator in inference mode.

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
  state = ckpt.restore(chosen, target)
  ckpt.close()
  sample = jax.jit(make_sample_fn(generator))
  return config, lambda z: np.asarray(sample(state, z)), chosen
