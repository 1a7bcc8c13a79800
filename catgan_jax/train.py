"""The training orchestrator: `train_and_evaluate(config, workdir)`.

One function drives a run from a config and a workdir: validate, build the
mesh, models and state, resume from the newest restorable checkpoint, then
loop over jitted steps, logging, sampling, checkpointing, evaluating, and
recovering from divergence and preemption. Tests, benchmarks and `main.py`
all call it.
"""

import functools
import os
import signal
import time
from typing import Any, Callable, Iterator, NamedTuple

from absl import logging
from clu import metric_writers
from clu import periodic_actions
from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from catgan_jax import checkpoint as checkpoint_lib
from catgan_jax import cli
from catgan_jax import config_lib
from catgan_jax import data as data_lib
from catgan_jax import inference
from catgan_jax import metrics_log
from catgan_jax import models
from catgan_jax import parallel
from catgan_jax import sampling
from catgan_jax import state as state_lib
from catgan_jax import step as step_lib
from catgan_jax import workdir as workdir_lib

SAMPLES_DIR = 'samples'
# orbax's and asyncio's log records (tracebacks of a failed save), kept off
# the console.
LIBRARY_LOG = 'library.log'
NUM_FIXED_SAMPLES = 64
# A conditional run's grid has one row per class up to this many classes.
MAX_CLASS_ROWS = 16


class DivergenceError(RuntimeError):
  """Training diverged more than `train.max_rollbacks` times in a row."""


class _StopRequest:
  """Turns SIGTERM/SIGINT into a request to checkpoint and stop cleanly."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # Not the main thread: signals stay as they were.
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning('Received signal %d: stopping after this step.', signum)
    self.requested = True

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def agreed(self) -> bool:
    """True when any process was asked to stop (all processes agree).

    With several processes this is a collective: every process must call it
    at the same steps.
    """
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    flags = multihost_utils.process_allgather(np.int32(self.requested))
    return bool(np.max(flags))


def _is_due(step: int, every: int, last: int) -> bool:
  return step == last or (every > 0 and step % every == 0)


class Run(NamedTuple):
  """What `build` makes of a config: the models, the state and the step."""

  generator: nn.Module
  discriminator: nn.Module
  # The initial state, replicated over the mesh.
  state: state_lib.GANState
  # The train step; `train_step.precompile(step)` compiles the program of
  # `step`'s phase now, otherwise each phase compiles when first used.
  train_step: step_lib.ScheduledStep


def build(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> Run:
  """The models, their initial state and the jitted train step of `config`.

  The trainer's own construction, public so that tests, benchmarks and the
  cross-checks run exactly what `train_and_evaluate` runs. The state is
  initialised directly into its replicated sharding; the step is jitted over
  `mesh` (batch split along 'data', state replicated), donates the state,
  and is compiled ahead of time per update phase.
  """
  generator, discriminator = models.create_models(config)
  init = functools.partial(
      state_lib.create_state, config, generator, discriminator
  )
  rep, batch = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  state = jax.jit(init, out_shardings=rep)()
  size = config.data.image_size
  batch_spec = jax.ShapeDtypeStruct(
      (step_lib.input_batch_size(config), size, size, 3),
      jnp.uint8,
      sharding=batch,
  )
  if config.data.get('num_classes', 0):
    # A conditional batch is (images, labels).
    batch_spec = (
        batch_spec,
        jax.ShapeDtypeStruct(
            (step_lib.input_batch_size(config),), jnp.int32, sharding=batch
        ),
    )
  state_spec = checkpoint_lib.abstract_like(state)

  def compile_phase(phase):
    t0 = time.time()
    step_fn = step_lib.make_train_step(config, generator, discriminator, phase)
    jitted = jax.jit(
        step_fn,
        in_shardings=(rep, batch),
        out_shardings=(rep, rep),
        donate_argnums=0,
    )
    compiled = jitted.lower(state_spec, batch_spec).compile()
    logging.info(
        'Compiled the train step (update D, G = %s) in %.1f s.',
        tuple(phase),
        time.time() - t0,
    )
    return compiled

  return Run(
      generator,
      discriminator,
      state,
      step_lib.ScheduledStep(config, compile_phase),
  )


def _input_iter(config, start_step: int, mesh) -> Iterator[jax.Array]:
  batches = data_lib.create_input_iter(
      config,
      local_batch_size=parallel.local_batch_size(
          step_lib.input_batch_size(config)
      ),
      start_step=start_step,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
  )
  return parallel.prefetch_to_mesh(batches, parallel.batch_sharded(mesh))


def _restore(ckpt, state, config, workdir):
  """The newest good checkpoint's state, or None for a new run.

  Writes nothing but the moving aside of damaged checkpoints.

  Raises:
    config_lib.ConfigError: a checkpoint does not fit this config (naming
      the parameters and the config fields that differ), or none of the
      checkpoints can be restored.
  """
  try:
    restored = ckpt.restore_latest(state)
  except checkpoint_lib.CheckpointMismatch as e:
    changed = config_lib.changed_fields(config, workdir)
    fields = (
        f'; changed config fields: {"; ".join(changed[:5])}' if changed else ''
    )
    raise config_lib.ConfigError(
        f'{e}{fields}; use another workdir, or --start_over to move the old '
        'run aside and start again at step 0'
    ) from None
  except checkpoint_lib.NoRestorableCheckpoint as e:
    raise config_lib.ConfigError(str(e)) from None
  if restored is None:
    _refuse_lost_checkpoints(workdir)
  if restored is not None:
    logging.info('Resumed from checkpoint at step %d.', int(restored.step))
  return restored


def _refuse_lost_checkpoints(workdir: str) -> None:
  """Refuses to start at step 0 over the metrics of a run with no checkpoint.

  Starting again would drop every record of the earlier run (a resume
  keeps only the records up to its step).
  """
  records = metrics_log.read_records(
      os.path.join(workdir, metrics_log.METRICS_FILE)
  )
  if records:
    last = max(r['step'] for r in records)
    raise config_lib.ConfigError(
        f'workdir={workdir!r} holds a run (metrics up to step {last}) but no '
        f'checkpoint to resume from in '
        f'{os.path.join(workdir, checkpoint_lib.CHECKPOINT_DIR)}; restore '
        'it, or --start_over to move the old run aside and start again at '
        'step 0'
    )


# What a run writes in its workdir; --start_over moves all of it aside.
_RUN_FILES = (
    'checkpoints',
    'checkpoints_best',
    'checkpoints_corrupt',
    'samples',
    'plots',
    'samples.gif',
    metrics_log.METRICS_FILE,
    metrics_log.METRICS_FILE + metrics_log.DAMAGED_SUFFIX,
    metrics_log.DIVERGENCE_FILE,
    config_lib.CONFIG_FILE,
    LIBRARY_LOG,
)
# Those of them that are folders.
_RUN_DIRS = (
    checkpoint_lib.CHECKPOINT_DIR,
    checkpoint_lib.BEST_DIR,
    checkpoint_lib.CORRUPT_DIR,
    SAMPLES_DIR,
    'plots',
)
PREVIOUS_DIR = 'previous'


def _outputs(workdir: str, start_over: bool) -> list[workdir_lib.Output]:
  """Every path a run writes in `workdir`, for the start-up probe."""
  outputs = [
      workdir_lib.Output(
          os.path.join(workdir, name), 'dir' if name in _RUN_DIRS else 'file'
      )
      for name in _RUN_FILES
  ]
  if start_over:
    outputs.append(
        workdir_lib.Output(os.path.join(workdir, PREVIOUS_DIR), 'dir')
    )
  return outputs


def _move_old_run_aside(workdir: str) -> str | None:
  """Moves an earlier run's files to `workdir/previous/<n>/` (process 0)."""
  if jax.process_index() != 0 or not os.path.isdir(workdir):
    return None
  names = [
      n
      for n in os.listdir(workdir)
      if n in _RUN_FILES or n.startswith('events.out.tfevents')
  ]
  if not names:
    return None
  n = 1
  while os.path.exists(os.path.join(workdir, PREVIOUS_DIR, str(n))):
    n += 1
  dest = os.path.join(workdir, PREVIOUS_DIR, str(n))
  os.makedirs(dest)
  moved = []
  try:
    for name in names:
      os.replace(os.path.join(workdir, name), os.path.join(dest, name))
      moved.append(name)
  except OSError as e:
    # All or nothing: what was moved goes back.
    for name in reversed(moved):
      os.replace(os.path.join(dest, name), os.path.join(workdir, name))
    os.rmdir(dest)
    raise cli.ResourceError(
        f'--start_over cannot move {os.path.join(workdir, name)} to {dest}: '
        f'{e.strerror}; the earlier run is as it was'
    ) from None
  logging.warning('--start_over: the earlier run is now in %s.', dest)
  return dest


def _rollback(ckpt, target, config, rollbacks: int):
  """Restores the last good checkpoint with lower LRs and fresh noise."""
  state = ckpt.restore_latest(target)
  if state is None:
    raise DivergenceError(
        'Training diverged and no checkpoint is left to ' 'roll back to.'
    )
  factor = config.train.rollback_lr_factor
  # A different noise stream, so the replay does not hit the same blow-up.
  return state.replace(
      g=state_lib.scale_learning_rate(state.g, factor),
      d=state_lib.scale_learning_rate(state.d, factor),
      rng=jax.random.fold_in(state.rng, 1_000_003 + rollbacks),
  )


def _scalars(means: dict[str, float], state) -> dict[str, float]:
  """The logged training scalars: interval means plus learning rates."""
  scalars = dict(means)
  scalars['g_lr'] = parallel.fetch(state_lib.learning_rate(state.g))
  scalars['d_lr'] = parallel.fetch(state_lib.learning_rate(state.d))
  return scalars


class _Evaluator:
  """FID/KID of the run's EMA generator, by the shared `Scorer`."""

  def __init__(self, config, generator, mesh):
    from catgan_jax.evaluation import scorer  # pylint: disable=g-import-not-at-top

    self._scorer = scorer.Scorer(config)
    self._rep = parallel.replicated(mesh)
    self._sampling_state = jax.jit(
        inference.make_sampling_state_fn(generator, config),
        out_shardings=self._rep,
    )
    self._sample = jax.jit(
        inference.make_sample_fn(generator), out_shardings=self._rep
    )

  def __call__(self, state) -> dict[str, float]:
    state = self._sampling_state(state)
    put = lambda a: None if a is None else jax.device_put(a, self._rep)
    # y: the labels of a conditional run's samples (the scorer draws them).
    return self._scorer.score(
        lambda z, y=None: parallel.fetch(self._sample(state, put(z), put(y)))
    )


def _load_feature_network(config) -> None:
  """Finds (or downloads) the FID network's weights first of all.

  A missing weights file is the most likely start-up failure on a new
  machine; it is answered before the models are built. The network stays
  loaded for the scorer.
  """
  if config.eval.every_steps < 0:
    return
  from catgan_jax.evaluation import features  # pylint: disable=g-import-not-at-top

  features.get_feature_fn(
      config.eval.features,
      config.eval.features_path,
      batch_size=config.eval.batch_size,
  )


def _make_evaluator(config, generator, mesh):
  """The FID/KID evaluator, or None when evaluation is off (every_steps<0).

  Built at start-up: missing feature weights stop the run before it
  writes anything.
  """
  if config.eval.every_steps < 0:
    return None
  return _Evaluator(config, generator, mesh)


class _ProgressLine:
  """One readable line per logged step: progress, speed, ETA, losses, FID."""

  def __init__(self, start: int, total: int):
    self._total = total
    self._last = (start, time.monotonic())
    self.fid = None

  def __call__(self, step: int, record: dict[str, float]) -> None:
    last_step, last_time = self._last
    now = time.monotonic()
    rate = (step - last_step) / max(now - last_time, 1e-9)
    self._last = (step, now)
    eta = (self._total - step) / rate if rate > 0 else float('inf')
    if 'fid' in record:
      self.fid = record['fid']
    parts = [
        f'step {step}/{self._total}',
        f'{rate:.2f} steps/s',
        f'ETA {_duration(eta)}',
    ]
    for name in ('d_loss', 'g_loss'):
      if name in record:
        parts.append(f'{name} {record[name]:.4f}')
    if self.fid is not None:
      parts.append(f'FID {self.fid:.2f}')
    logging.info('  '.join(parts))


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  return (
      f'{hours}h{rest // 60:02d}m'
      if hours
      else f'{rest // 60}m{rest % 60:02d}s'
  )


def _diverged(metrics: dict[str, float], max_loss: float) -> str:
  """Why `metrics` show divergence ('' if they do not)."""
  if not metrics['finite']:
    return 'non-finite loss or parameters'
  if max_loss > 0:
    for name in ('d_loss', 'g_loss'):
      if abs(metrics[name]) > max_loss:
        return f'{name}={metrics[name]:.4g} above train.max_loss={max_loss}'
  return ''


class _Samples:
  """Fixed-noise sample grids: TensorBoard image and PNG under samples/."""

  def __init__(self, config, generator, mesh, workdir, writer):
    rng = jax.random.PRNGKey(config.seed + 1)
    z = jax.random.normal(rng, (NUM_FIXED_SAMPLES, config.model.z_dim))
    self._ncol = None
    num_classes = config.data.get('num_classes', 0)
    if 0 < num_classes <= MAX_CLASS_ROWS:
      # One row per class, the same latents in every row: a conditional G
      # given no labels takes the classes in blocks (models/conditioning).
      self._ncol = NUM_FIXED_SAMPLES // num_classes
      z = jnp.tile(z[: self._ncol], (num_classes, 1))
    self._z = jax.device_put(z, parallel.replicated(mesh))
    self._sampling_state = jax.jit(
        inference.make_sampling_state_fn(generator, config),
        out_shardings=parallel.replicated(mesh),
    )
    self._fn = jax.jit(
        inference.make_sample_fn(generator),
        out_shardings=parallel.replicated(mesh),
    )
    self._dir = os.path.join(workdir, SAMPLES_DIR)
    self._writer = writer

  def __call__(self, step: int, state) -> dict[str, float]:
    """Writes the grid of `step`; returns its scalars (`sample_std`)."""
    images = parallel.fetch(self._fn(self._sampling_state(state), self._z))
    grid = sampling.make_grid(images, ncol=self._ncol)
    self._writer.write_images(step, {'samples': grid[None]})
    if jax.process_index() == 0:
      sampling.save_png(grid, os.path.join(self._dir, f'{step:08d}.png'))
    # A collapse to one output shows here long before it shows in the FID.
    return {'sample_std': sampling.pixel_std_across_samples(images)}


def _finish_pictures(workdir: str) -> None:
  """An animated GIF of the sample grids over training, and metric plots."""
  if jax.process_index() != 0:
    return
  sample_dir = os.path.join(workdir, SAMPLES_DIR)
  names = sorted(n for n in os.listdir(sample_dir) if n.endswith('.png'))
  if names:
    frames = [
        np.asarray(Image.open(os.path.join(sample_dir, n))) for n in names
    ]
    sampling.save_gif(frames, os.path.join(workdir, 'samples.gif'))
  from catgan_jax import plots  # pylint: disable=g-import-not-at-top

  plots.plot_metrics(
      os.path.join(workdir, metrics_log.METRICS_FILE),
      os.path.join(workdir, 'plots'),
  )


# `train_and_evaluate`'s `on_step(step, state) -> stop?`.
StepHook = Callable[[int, Any], bool]
# With a hook, the update phases of this many steps ahead are compiled
# before the loop (the phase patterns repeat well within it).
_PHASE_SCAN_STEPS = 1000


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    start_over: bool = False,
    on_step: StepHook | None = None,
) -> Any:
  """Trains a GAN as `config` says, in (and resuming from) `workdir`.

  Everything the run needs is resolved before the first file is written:
  the config, the workdir, the checkpoint to resume from, the training
  images and the feature network's weights. A problem with any of them is a
  `config_lib.ConfigError` and the workdir is left exactly as it was.

  Args:
    config: the run config (see configs/default.py).
    workdir: the run directory: checkpoints, TensorBoard events,
      metrics.jsonl, samples, config.json.
    start_over: move an earlier run in `workdir` aside (to
      `workdir/previous/<n>/`) and start at step 0 instead of resuming.
    on_step: called with (step, state) once before the first step (the
      step resumed from, after start-up and the compilation of every
      update phase of the steps ahead) and after every
      step; True asks the run to stop there as SIGTERM does (a checkpoint
      of that step, then return; with several processes at the next logged
      or checkpoint step). The state is the step's output, possibly still
      being computed: reading it waits for the step. A training budget in
      wall time (`catgan_jax.study`, benchmarks/time_to_quality.py) and
      scores at points of it are made with this.

  Returns:
    The final `GANState` (replicated over the mesh).

  Raises:
    config_lib.ConfigError: the config, workdir, data or feature weights
      are unusable (before any work is done).
    cli.ResourceError: a checkpoint cannot be written (disk full,
      permissions); the earlier checkpoints are intact.
    DivergenceError: more than `train.max_rollbacks` rollbacks in a row.
  """
  if '://' not in workdir:  # Orbax wants absolute paths; gs:// stays as is.
    workdir = os.path.abspath(workdir)
  config_lib.validate(config)
  # One writer at a time: a second trainer, --start_over or a command
  # writing into the workdir is refused while this one runs.
  with workdir_lib.claim_on_main(workdir, _outputs(workdir, start_over)):
    with cli.library_log(os.path.join(workdir, LIBRARY_LOG)):
      try:
        return _train(config, workdir, start_over, on_step)
      except cli.ResourceError as e:
        log = os.path.join(workdir, LIBRARY_LOG)
        if os.path.exists(log):
          raise cli.ResourceError(f'{e} (details: {log})') from None
        raise


def _train(
    config: ml_collections.ConfigDict,
    workdir: str,
    start_over: bool,
    on_step: StepHook | None,
) -> Any:
  """`train_and_evaluate` once the workdir is held and probed."""
  if not start_over:
    config_lib.check_workdir(config, workdir)
  _load_feature_network(config)
  parallel.log_topology()
  mesh = parallel.create_mesh()
  run = build(config, mesh)
  generator, state = run.generator, run.state
  target = checkpoint_lib.abstract_like(state)
  if jax.process_index() == 0 and '://' not in workdir:
    workdir_lib.check_free_space(
        workdir_lib.Output(
            os.path.join(workdir, checkpoint_lib.CHECKPOINT_DIR), 'dir'
        ),
        sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(target)),
    )
  ckpt = checkpoint_lib.Checkpointer(workdir, config.keep_checkpoints)
  restored = None if start_over else _restore(ckpt, state, config, workdir)
  start = 0 if restored is None else int(parallel.fetch(restored.step))
  state = state if restored is None else restored
  try:
    batches = _input_iter(config, start, mesh)
  except ValueError as e:  # No usable image, a missing folder, ...
    raise config_lib.ConfigError(str(e)) from None
  evaluator = _make_evaluator(config, generator, mesh)
  train_step = run.train_step
  train_step.precompile(start)  # Its compile time is logged before any write.
  if on_step is not None:
    # A hook may time the loop (a training budget): every phase of the
    # steps ahead is compiled now, not inside the timed loop.
    for phase in {
        step_lib.update_phase(config, s)
        for s in range(start, start + _PHASE_SCAN_STEPS)
    }:
      train_step.program(phase)

  # Every check passed: from here on the run writes into its workdir.
  if start_over:
    _move_old_run_aside(workdir)
    ckpt = checkpoint_lib.Checkpointer(workdir, config.keep_checkpoints)
  config_lib.save_config(config, workdir)
  is_main = jax.process_index() == 0
  writer = metric_writers.create_default_writer(
      workdir, just_logging=not is_main
  )
  log = metrics_log.MetricsLog(workdir)
  if is_main:
    log.truncate(start)
  if start == 0:
    writer.write_hparams(config_lib.hparams(config))
    # A checkpoint at step 0 gives the divergence guard something to return
    # to.
    ckpt.save(0, state)
  samples = _Samples(config, generator, mesh, workdir, writer)
  best = (
      checkpoint_lib.Checkpointer(workdir, 1, best_by='fid')
      if evaluator
      else None
  )
  total = config.num_train_steps
  # Steps are dispatched asynchronously and the host waits for the device only
  # at logged steps: progress (steps/s, ETA) is reported there and only there
  # (not every N seconds), so that it measures device time.
  new_progress = functools.partial(
      periodic_actions.ReportProgress,
      num_train_steps=total,
      writer=writer,
      every_steps=config.log_every_steps,
      every_secs=None,
  )
  progress = new_progress()
  progress_line = _ProgressLine(start, total)
  rollbacks = 0
  interval = metrics_log.IntervalMeans()
  step = start
  with _StopRequest() as stop:
    if on_step is not None and on_step(step, state):
      stop.requested = True
    while step < total:
      state, metrics = train_step(state, next(batches), step)
      # A save that failed in the background stops the run now.
      ckpt.raise_if_failed()
      if best:
        best.raise_if_failed()
      interval.update(metrics)
      step += 1
      if on_step is not None and on_step(step, state):
        stop.requested = True
      # With several processes, agreeing on a stop is an all-gather; it is
      # done only at logged or checkpoint steps (the same steps on every
      # process), so there a requested stop waits for the next of those.
      stopping = (
          jax.process_count() == 1
          or _is_due(step, config.log_every_steps, total)
          or _is_due(step, config.checkpoint_every_steps, total)
      ) and stop.agreed()
      last = total if not stopping else step
      log_due = _is_due(step, config.log_every_steps, last)
      ckpt_due = _is_due(step, config.checkpoint_every_steps, last)
      eval_due = (
          evaluator
          and not stopping
          and _is_due(step, config.eval.every_steps, total)
      )
      record = {}
      if log_due or ckpt_due or eval_due:
        host_metrics = parallel.fetch(metrics)
        why = _diverged(host_metrics, config.train.max_loss)
        if why:
          rollbacks += 1
          logging.error(
              'Divergence at step %d: %s (rollback %d of %d).',
              step,
              why,
              rollbacks,
              config.train.max_rollbacks,
          )
          if is_main:
            metrics_log.record_divergence(workdir, step, why)
          if rollbacks > config.train.max_rollbacks:
            raise DivergenceError(
                f'Training diverged at step {step} ({why}) after '
                f'{config.train.max_rollbacks} rollbacks '
                '(train.max_rollbacks).'
            )
          state = _rollback(ckpt, target, config, rollbacks)
          step = int(parallel.fetch(state.step))
          if is_main:
            log.truncate(step)
          batches = _input_iter(config, step, mesh)
          interval.reset()
          progress = new_progress()  # It insists on consecutive steps.
          progress_line = _ProgressLine(step, total)
          continue
        if log_due:
          record.update(_scalars(interval.result(), state))
      progress(step)
      if ckpt_due:
        with progress.timed('checkpoint'):
          ckpt.save(step, state)
        rollbacks = 0
      if eval_due:
        with progress.timed('eval'):
          scores = evaluator(state)
        best.save(step, state, metrics=scores)
        record.update(scores)
      if _is_due(step, config.sample_every_steps, last):
        record.update(samples(step, state))
      if record:
        writer.write_scalars(step, record)
        if is_main:
          log.write(step, record)
      if log_due:
        progress_line(step, record)
      if stopping:
        logging.warning(
            'Stopped at step %d on request; checkpoint saved.', step
        )
        break
  if best:
    best.close()
  ckpt.close()
  writer.flush()
  if step >= total:
    _finish_pictures(workdir)
  logging.info('Finished at step %d.', step)
  return state
