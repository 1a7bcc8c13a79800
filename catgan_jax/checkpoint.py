"""Orbax checkpoints of the GAN state: save every N steps, keep K, resume.

A run resumes from the newest checkpoint in `workdir/checkpoints` that can
be restored; one that cannot (truncated or deleted files) is moved aside to
`workdir/checkpoints_corrupt/` with a warning and the previous one is used.
Checkpoints are sharded: every process writes its part, and a checkpoint
restores onto any device count because the target carries the shardings.
"""

import os
from typing import Any, Callable

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

CHECKPOINT_DIR = 'checkpoints'
# The single checkpoint with the lowest FID so far.
BEST_DIR = 'checkpoints_best'
CORRUPT_DIR = 'checkpoints_corrupt'


def abstract_like(state: Any) -> Any:
  """Shape/dtype/sharding skeleton of `state`, the target of a restore."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class Checkpointer:
  """Saves and restores `GANState`s under `workdir/checkpoints`."""

  def __init__(self, workdir: str, keep: int, best_by: str = ''):
    """Opens (creating if needed) the checkpoints of `workdir`.

    Args:
      workdir: the run directory.
      keep: number of checkpoints kept.
      best_by: if set, the metric (lower is better) that decides which
        checkpoints are kept, in `workdir/checkpoints_best`.
    """
    self._workdir = epath.Path(workdir)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    directory = self._workdir / CHECKPOINT_DIR
    if best_by:
      directory = self._workdir / BEST_DIR
      options = ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True, best_mode='min',
          best_fn=lambda metrics: metrics[best_by])
    self._mgr = ocp.CheckpointManager(directory, options=options)

  @property
  def directory(self) -> epath.Path:
    return self._mgr.directory

  def all_steps(self) -> list[int]:
    return list(self._mgr.all_steps())

  def latest_step(self) -> int | None:
    return self._mgr.latest_step()

  def best_step(self) -> int | None:
    return self._mgr.best_step()

  def save(self, step: int, state: Any,
           metrics: dict[str, float] | None = None) -> bool:
    """Starts an asynchronous save of `state` at `step` (all processes)."""
    return self._mgr.save(step, args=ocp.args.StandardSave(state),
                          metrics=metrics, force=True)

  def restore(self, step: int, target: Any) -> Any:
    """Restores the checkpoint of `step` onto the shardings of `target`."""
    return self._mgr.restore(
        step, args=ocp.args.StandardRestore(abstract_like(target)))

  def restore_latest(self, target: Any) -> Any | None:
    """Restores the newest restorable checkpoint, or None if there is none.

    Args:
      target: a state with the structure, dtypes and shardings to restore to.

    Returns:
      The restored state, or None when no checkpoint could be restored.
    """
    self.wait()
    for step in sorted(self.all_steps(), reverse=True):
      try:
        return self.restore(step, target)
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('Checkpoint %d in %s cannot be restored (%s: %s); '
                        'falling back to the previous one.', step,
                        self.directory, type(e).__name__, e)
        self._move_aside(step)
    return None

  def _move_aside(self, step: int) -> None:
    """Moves an unrestorable checkpoint out of the manager's sight."""
    if jax.process_index() == 0:
      dest = self._workdir / CORRUPT_DIR
      dest.mkdir(parents=True, exist_ok=True)
      src = self.directory / str(step)
      if src.exists():
        os.replace(src, dest / str(step))
    # Keep processes in step before the manager re-reads the directory.
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f'move_aside_{step}')
    self._mgr.reload()

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are committed."""
    self._mgr.wait_until_finished()

  def close(self) -> None:
    self._mgr.wait_until_finished()
    self._mgr.close()


def load_generator(workdir: str, step: str | int = 'latest'
                   ) -> tuple[Any, Callable[[jax.Array], np.ndarray], int]:
  """Loads a run's generator for sampling, on whatever devices are present.

  Args:
    workdir: the run directory (holds config.json and checkpoints).
    step: 'latest', 'best' (lowest FID) or a step number.

  Returns:
    (config, sample, step): `sample(z)` maps latents [N, z_dim] to images
    in [-1, 1] with the EMA generator in inference mode.

  Raises:
    ValueError: no such checkpoint in `workdir`.
  """
  # Imported here: the trainer imports this module, these import the models.
  from catgan_jax import config_lib, models, state as state_lib, step as step_lib  # pylint: disable=g-import-not-at-top,g-multiple-import
  config = config_lib.load_config(workdir)
  generator, discriminator = models.create_models(config)
  # Shapes only: the restore needs no initialised parameters.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      jax.eval_shape(lambda: state_lib.create_state(config, generator,
                                                    discriminator)))
  ckpt = Checkpointer(workdir, keep=config.keep_checkpoints,
                      best_by='fid' if step == 'best' else '')
  steps = ckpt.all_steps()
  if step in ('latest', 'best'):
    chosen = ckpt.best_step() if step == 'best' else ckpt.latest_step()
  else:
    chosen = int(step)
  if chosen is None or chosen not in steps:
    raise ValueError(f'No checkpoint step={step!r} in {ckpt.directory} '
                     f'(available: {steps})')
  state = ckpt.restore(chosen, target)
  ckpt.close()
  sample = jax.jit(step_lib.make_sample_fn(generator))
  return config, lambda z: np.asarray(sample(state, z)), chosen
