"""Orbax checkpoints of the GAN state: save every N steps, keep K, resume.

A run resumes from the newest checkpoint in `workdir/checkpoints` that can
be restored. Two kinds of failure are told apart:

* a *damaged* checkpoint (unreadable files, missing metadata, a restore that
  fails although the layout fits) is moved aside to
  `workdir/checkpoints_corrupt/` under a name that never collides, with a
  warning, and the next older one is tried;
* a checkpoint that *does not fit this config* (other parameter shapes,
  dtypes or tree structure: the model was changed) is a config error; nothing
  is moved, and the message names the parameters that differ.

When checkpoints existed but none can be restored, the run stops
(`NoRestorableCheckpoint`) instead of silently starting again at step 0.
Readers (`generate`, `evaluate`) fall back the same way with
`restore_newest`, but move nothing: the workdir may belong to a running
trainer.

Saves are asynchronous. Each one first probes its folder (a full disk or a
lost permission is one `cli.ResourceError` before orbax starts its
threads), and `raise_if_failed`, called every step, turns a save that
failed in the background into that error at once, naming its step.
Checkpoints are sharded: every process writes its part, and a checkpoint
restores onto any device count because the target carries the shardings.
Opening a workdir's checkpoints writes nothing; the directory is created by
the first save.
"""

import errno
import os
from typing import Any

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from catgan_jax import cli
from catgan_jax import workdir as workdir_lib

CHECKPOINT_DIR = 'checkpoints'
# The single checkpoint with the lowest FID so far.
BEST_DIR = 'checkpoints_best'
CORRUPT_DIR = 'checkpoints_corrupt'


def abstract_like(state: Any) -> Any:
  """Shape/dtype/sharding skeleton of `state`, the target of a restore."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class CheckpointMismatch(cli.UserError):
  """A healthy checkpoint whose layout does not fit the config's state."""

  def __init__(self, directory, step: int, differences: list[str]):
    self.step = step
    self.differences = differences
    shown = '; '.join(differences[:4])
    more = f' (and {len(differences) - 4} more)' if len(differences) > 4 else ''
    super().__init__(
        f'checkpoint {step} in {directory} does not fit this '
        f'config: {shown}{more}'
    )


class NoRestorableCheckpoint(cli.UserError):
  """Checkpoints existed, but every one of them is damaged."""


def _leaf_layout(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """'/'-joined path -> (shape, dtype) of every leaf of a state or metadata."""

  def name(key) -> str:
    for attr in ('key', 'name', 'idx'):
      if hasattr(key, attr):
        return str(getattr(key, attr))
    return str(key)

  layout = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    shape = tuple(getattr(leaf, 'shape', ()) or ())
    dtype = getattr(leaf, 'dtype', None)
    layout['/'.join(name(k) for k in path)] = (
        shape,
        str(np.dtype(dtype)) if dtype is not None else '',
    )
  return layout


def layout_differences(saved: Any, target: Any) -> list[str]:
  """How the leaves of a checkpoint's metadata differ from a target state.

  Args:
    saved: the checkpoint's tree metadata (leaves with shape and dtype).
    target: the state (or its abstract skeleton) a restore would fill.

  Returns:
    One readable line per differing leaf; empty when the layouts fit.
  """
  old, new = _leaf_layout(saved), _leaf_layout(target)
  lines = []
  for path in sorted(set(old) | set(new)):
    if path not in new:
      lines.append(f'{path} is in the checkpoint only')
    elif path not in old:
      lines.append(f'{path} is in this config only')
    else:
      (old_shape, old_dtype), (new_shape, new_dtype) = old[path], new[path]
      if old_shape != new_shape:
        lines.append(
            f'{path} has shape {old_shape} in the checkpoint, '
            f'{new_shape} in this config'
        )
      elif old_dtype and new_dtype and old_dtype != new_dtype:
        lines.append(
            f'{path} has dtype {old_dtype} in the checkpoint, '
            f'{new_dtype} in this config'
        )
  return lines


_RESOURCE_ERRNOS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
)


def resource_cause(error: BaseException) -> str:
  """The disk-full or permission cause inside an exception chain, or ''."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _RESOURCE_ERRNOS:
      where = f' ({error.filename})' if error.filename else ''
      return f'{os.strerror(error.errno)}{where}'
    text = str(error)
    for marker in (
        'RESOURCE_EXHAUSTED',
        'No space left on device',
        'Permission denied',
        'Read-only file system',
    ):
      if marker in text:
        return text.strip().splitlines()[0][:300]
    error = error.__cause__ or error.__context__
  return ''


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
    self._best = bool(best_by)
    # The step of the asynchronous save not yet known to have succeeded.
    self._pending = None
    # create=False: reading a workdir (resume checks, generate, evaluate)
    # leaves it as it was; the first save creates the directory.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=False)
    directory = self._workdir / CHECKPOINT_DIR
    if best_by:
      directory = self._workdir / BEST_DIR
      options = ocp.CheckpointManagerOptions(
          max_to_keep=keep,
          create=False,
          best_mode='min',
          best_fn=lambda metrics: metrics[best_by],
      )
    # The handler is named up front so that a new process can read a
    # checkpoint's metadata (layout checks) before restoring it.
    self._mgr = ocp.CheckpointManager(
        directory,
        options=options,
        item_handlers=ocp.StandardCheckpointHandler(),
    )

  @property
  def directory(self) -> epath.Path:
    return self._mgr.directory

  def all_steps(self) -> list[int]:
    return list(self._mgr.all_steps())

  def latest_step(self) -> int | None:
    return self._mgr.latest_step()

  def best_step(self) -> int | None:
    return self._mgr.best_step()

  def save(
      self, step: int, state: Any, metrics: dict[str, float] | None = None
  ) -> bool:
    """Starts an asynchronous save of `state` at `step` (all processes).

    Raises:
      cli.ResourceError: the disk is full or the directory not writable
        (this save's or an earlier asynchronous one's); the checkpoints
        already committed stay as they were.
    """
    # orbax's save waits for the previous one anyway; waiting here first
    # names a failed background save by its own step, not this one's.
    self.raise_if_failed(block=True)
    try:
      if not self.directory.exists():
        self.directory.mkdir(parents=True, exist_ok=True)
        self._mgr.reload()
      if '://' not in str(self.directory):
        workdir_lib.probe_folder(str(self.directory))
      saved = self._mgr.save(
          step, args=ocp.args.StandardSave(state), metrics=metrics, force=True
      )
    except Exception as e:  # pylint: disable=broad-except
      raise self._resource_error(e, step) from e
    if saved:
      self._pending = step
    return saved

  def raise_if_failed(self, block: bool = False) -> None:
    """Raises at once if the last asynchronous save failed.

    Cheap while a save is running or none is pending: the trainer calls it
    every step, so a save that fails in the background stops the run at
    the next step instead of after more training that cannot be saved.

    Args:
      block: wait for a save still in progress instead of returning.

    Raises:
      cli.ResourceError: naming the step whose save failed and why.
    """
    step = self._pending
    if step is None or (not block and self._mgr.is_saving_in_progress()):
      return
    self.wait()
    # orbax can log a failed commit and carry on; the step's folder is
    # the proof. (A best-by-metric manager may drop a new step at once.)
    if (
        not self._best
        and jax.process_index() == 0
        and '://' not in str(self.directory)
        and not (self.directory / str(step)).exists()
    ):
      raise cli.ResourceError(
          f'checkpoint {step} was not written in {self.directory}; the '
          'checkpoints already saved there are intact (check the disk, '
          'then rerun the same command)'
      )

  def _resource_error(
      self, error: Exception, step: int | None, background: bool = False
  ) -> Exception:
    cause = resource_cause(error)
    if not cause:
      if not background:
        return error
      # A background failure has no caller to see its traceback.
      lines = str(error).strip().splitlines()
      cause = f'{type(error).__name__}: {lines[0] if lines else ""}'[:300]
    what = f'checkpoint {step}' if step is not None else 'a checkpoint'
    return cli.ResourceError(
        f'cannot write {what} in {self.directory}: {cause}; the checkpoints '
        'already saved there are intact (free space or fix permissions, '
        'then rerun the same command)'
    )

  def restore(self, step: int, target: Any) -> Any:
    """Restores the checkpoint of `step` onto the shardings of `target`."""
    return self._mgr.restore(
        step, args=ocp.args.StandardRestore(abstract_like(target))
    )

  def check_fits(self, step: int, target: Any) -> bool:
    """False if checkpoint `step` is damaged (its metadata is unreadable).

    Raises:
      CheckpointMismatch: it is readable but its layout differs from
        `target`'s.
    """
    try:
      saved = self._mgr.item_metadata(step)
      saved = getattr(saved, 'tree', saved)
    except Exception as e:  # pylint: disable=broad-except
      logging.warning(
          'Checkpoint %d in %s is damaged (its metadata cannot '
          'be read: %s: %s).',
          step,
          self.directory,
          type(e).__name__,
          e,
      )
      return False
    if not saved:
      logging.warning(
          'Checkpoint %d in %s is damaged (no metadata).', step, self.directory
      )
      return False
    differences = layout_differences(saved, target)
    if differences:
      raise CheckpointMismatch(self.directory, step, differences)
    return True

  def restore_latest(self, target: Any) -> Any | None:
    """Restores the newest restorable checkpoint, or None if there is none.

    Damaged checkpoints are moved aside, newest first, until one restores.

    Args:
      target: a state with the structure, dtypes and shardings to restore to.

    Returns:
      The restored state, or None when the run has no checkpoint yet.

    Raises:
      CheckpointMismatch: the newest readable checkpoint does not fit
        `target` (nothing is moved).
      NoRestorableCheckpoint: checkpoints exist (or were moved aside
        before) but none can be restored.
    """
    self.wait()
    moved = 0
    for step in sorted(self.all_steps(), reverse=True):
      if self.check_fits(step, target):
        try:
          return self.restore(step, target)
        except Exception as e:  # pylint: disable=broad-except
          logging.warning(
              'Checkpoint %d in %s cannot be restored (%s: %s).',
              step,
              self.directory,
              type(e).__name__,
              str(e).splitlines()[0] if str(e) else '',
          )
      self._move_aside(step)
      moved += 1
      logging.warning(
          'Damaged checkpoint %d moved to %s; trying the ' 'previous one.',
          step,
          self._workdir / CORRUPT_DIR,
      )
    corrupt = self._workdir / CORRUPT_DIR
    if moved or (corrupt.exists() and any(corrupt.iterdir())):
      raise NoRestorableCheckpoint(
          f'workdir={str(self._workdir)!r} has no restorable checkpoint (the '
          f'damaged ones are in {corrupt}); use another workdir, or '
          '--start_over to move the old run aside and start again at step 0'
      )
    return None

  def restore_newest(
      self, target: Any, steps: list[int] | None = None
  ) -> tuple[Any, int]:
    """The newest of `steps` (default: all) that restores, moving nothing.

    The readers' recovery: a damaged checkpoint is skipped with a warning
    and the next older one tried, as the trainer does, but left where it
    is (a running trainer may own the workdir).

    Returns:
      (state, step).

    Raises:
      CheckpointMismatch: a readable checkpoint does not fit `target`.
      NoRestorableCheckpoint: none of them restores.
    """
    candidates = sorted(self.all_steps() if steps is None else steps)
    for step in reversed(candidates):
      if not self.check_fits(step, target):
        continue  # It said why.
      try:
        return self.restore(step, target), step
      except Exception as e:  # pylint: disable=broad-except
        lines = str(e).strip().splitlines()
        logging.warning(
            'Checkpoint %d in %s cannot be restored (%s: %s).',
            step,
            self.directory,
            type(e).__name__,
            lines[0][:300] if lines else '',
        )
    raise NoRestorableCheckpoint(
        f'no checkpoint in {self.directory} can be restored (tried '
        f'{candidates or "none"})'
    )

  def _move_aside(self, step: int) -> None:
    """Moves an unrestorable checkpoint out of the manager's sight."""
    if jax.process_index() == 0:
      dest = self._workdir / CORRUPT_DIR
      dest.mkdir(parents=True, exist_ok=True)
      src = self.directory / str(step)
      if src.exists():
        os.replace(src, _unique(dest, str(step)))
    # Keep processes in step before the manager re-reads the directory.
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      multihost_utils.sync_global_devices(f'move_aside_{step}')
    self._mgr.reload()

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are committed.

    Raises:
      cli.ResourceError: the pending save failed (naming its step).
    """
    step, self._pending = self._pending, None
    try:
      self._mgr.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._resource_error(e, step, background=True) from None

  def close(self) -> None:
    self.wait()
    self._mgr.close()


def _unique(directory: epath.Path, name: str) -> epath.Path:
  """`directory/name`, or `name.1`, `name.2`, ... if that is taken."""
  candidate, n = directory / name, 0
  while candidate.exists():
    n += 1
    candidate = directory / f'{name}.{n}'
  return candidate
