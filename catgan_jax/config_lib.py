"""Config validation and the per-workdir config record.

Everything here runs before any work is done, so a bad config costs nothing
and leaves the workdir untouched: each problem is one `ConfigError` whose
message names the field and the value.
"""

import json
import math
import os

import jax
import ml_collections

from catgan_jax import cli
from catgan_jax import losses
from catgan_jax import models
from catgan_jax import schedules
from catgan_jax import state as state_lib
from catgan_jax import step as step_lib
from catgan_jax.models import projected

CONFIG_FILE = 'config.json'
# Fields every recorded config has: a config.json without them (`{}`, a
# stray file) cannot be compared with a new config.
_RECORDED_FIELDS = ('batch_size', 'model', 'loss', 'optim', 'data')

# Fields that may change between the runs of one workdir without
# allow_config_change: they do not change what is being trained.
_MUTABLE_FIELDS = (
    'num_train_steps',
    'log_every_steps',
    'sample_every_steps',
    'checkpoint_every_steps',
    'keep_checkpoints',
    'allow_config_change',
    'eval',
    'distributed',
    'data.dir',
    'data.manifest',
    'data.cache',
    'data.tfds_data_dir',
)


class ConfigError(cli.UserError):
  """A config value that cannot work; the message names field and value."""


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise ConfigError(message)


def _check_positive(config: ml_collections.ConfigDict) -> None:
  for field in (
      'batch_size',
      'num_train_steps',
      'log_every_steps',
      'sample_every_steps',
      'checkpoint_every_steps',
      'keep_checkpoints',
      'optim.g_lr',
      'optim.d_lr',
      'train.d_steps_per_g_step',
      'train.d_every_k_steps',
      'model.z_dim',
  ):
    value = _get(config, field)
    _require(value > 0, f'{field}={value!r} must be positive')


def _get(config: ml_collections.ConfigDict, field: str):
  for part in field.split('.'):
    config = config[part]
  return config


def _check_finite(config: ml_collections.ConfigDict) -> None:
  """No field may be inf or nan (an inf learning rate trains into NaNs)."""
  for field, value in _flatten(config).items():
    values = value if isinstance(value, list) else [value]
    for v in values:
      _require(
          not isinstance(v, float) or math.isfinite(v),
          f'{field}={value!r} must be a finite number',
      )
    # JSON writes inf and nan as strings; to_json refuses them outright.


# Fields naming a file the run reads, and folders it reads.
_FILE_FIELDS = ('data.manifest', 'eval.features_path', 'model.feature_path')
_FOLDER_FIELDS = ('data.dir', 'data.tfds_data_dir')


def check_path_kinds(config: ml_collections.ConfigDict) -> None:
  """A folder where a file goes (or the reverse) is named as such."""
  for field in _FILE_FIELDS + _FOLDER_FIELDS:
    try:
      value = _get(config, field)
    except (KeyError, AttributeError):
      continue  # A field of another version of the config.
    if not isinstance(value, str) or not value or not os.path.exists(value):
      continue
    is_dir = os.path.isdir(value)
    if field in _FILE_FIELDS and is_dir:
      raise ConfigError(f'{field}={value!r} is a folder, not a file')
    if field in _FOLDER_FIELDS and not is_dir:
      raise ConfigError(f'{field}={value!r} is a file, not a folder')


def check_eval(ev: ml_collections.ConfigDict) -> None:
  """The evaluation settings, whether or not evaluation is on.

  The same config is read again by `evaluate`, and a mistake found only
  after training (a zero batch size hangs the scorer) costs the run.
  """
  from catgan_jax.evaluation import features  # pylint: disable=g-import-not-at-top

  _require(
      ev.features in features.FEATURES,
      f'eval.features={ev.features!r} is unknown; valid: '
      f'{", ".join(sorted(features.FEATURES))}',
  )
  _require(
      isinstance(ev.every_steps, int) and ev.every_steps >= -1,
      f'eval.every_steps={ev.every_steps!r} must be an integer >= -1 '
      '(-1 = never, 0 = at the end only)',
  )
  for field, least in (
      ('num_samples', 1),
      ('batch_size', 1),
      ('kid_subsets', 1),
      ('kid_subset_size', 1),
      ('num_reference', 0),
  ):
    value = ev.get(field, least)
    _require(
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= least,
        f'eval.{field}={value!r} must be an integer >= {least}',
    )


def _check_lipschitz(loss: ml_collections.ConfigDict) -> None:
  """A WGAN critic without its Lipschitz constraint trains without error and
  without meaning (the critic's output grows without bound), so refuse it."""
  if loss.name == 'wgan_gp':
    _require(
        loss.gp_weight > 0,
        f'loss.gp_weight={loss.gp_weight!r} must be '
        "positive for loss.name='wgan_gp' (its gradient penalty)",
    )
  if loss.name == 'wgan':
    _require(
        loss.clip > 0 or loss.gp_weight > 0 or loss.r1_weight > 0,
        f"loss.name='wgan' needs a Lipschitz constraint: loss.clip="
        f'{loss.clip!r} (weight clipping), loss.gp_weight='
        f'{loss.gp_weight!r} or loss.r1_weight={loss.r1_weight!r} must '
        'be positive',
    )


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks a config before any work is done.

  Args:
    config: the run config.

  Raises:
    ConfigError: with one line naming the offending field and its value.
  """
  _check_finite(config)
  _check_positive(config)
  check_path_kinds(config)
  check_eval(config.eval)
  try:
    losses.get_loss(config.loss.name)
    models.create_models(config)
    projected.check_scorer(config)
    step_lib.check_config(config)
    from catgan_jax import data  # pylint: disable=g-import-not-at-top

    data.validate_data_config(config)
    schedules.check_config(config)
  except ConfigError:
    raise
  except ValueError as e:
    raise ConfigError(str(e)) from None
  for net in ('g', 'd'):
    name = config.optim[f'{net}_name']
    _require(
        name in state_lib.OPTIMIZERS,
        f'optim.{net}_name={name!r} is unknown; valid: '
        f'{", ".join(sorted(state_lib.OPTIMIZERS))}',
    )
  _check_lipschitz(config.loss)
  _require(
      0.0 <= config.train.ema_decay < 1.0,
      f'train.ema_decay={config.train.ema_decay!r} must be in [0, 1)',
  )
  per_class = config.eval.get('per_class', False)
  _require(
      isinstance(per_class, bool)
      and (not per_class or config.data.get('num_classes', 0) > 0),
      f'eval.per_class={per_class!r} must be True or False, and True only '
      'for a class-conditional run (data.num_classes > 0)',
  )
  splits = config.eval.get('is_splits', 10)
  _require(
      isinstance(splits, int) and 1 <= splits <= config.eval.num_samples,
      f'eval.is_splits={splits!r} must be an integer from 1 to '
      f'eval.num_samples={config.eval.num_samples}',
  )
  n = jax.device_count()
  _require(
      config.batch_size % n == 0,
      f'batch_size={config.batch_size} is not divisible by the {n} ' 'devices',
  )


def _flatten(config: ml_collections.ConfigDict) -> dict:
  def walk(d, prefix):
    for k, v in d.items():
      key = f'{prefix}{k}'
      if isinstance(v, dict):
        yield from walk(v, key + '.')
      else:
        yield key, v

  return dict(walk(json.loads(config.to_json()), ''))


def hparams(config: ml_collections.ConfigDict) -> dict:
  """The config as flat scalar hyperparameters (for TensorBoard)."""
  return {
      k: v if isinstance(v, (bool, int, float, str)) else str(v)
      for k, v in _flatten(config).items()
  }


def _is_mutable(field: str) -> bool:
  return any(field == m or field.startswith(m + '.') for m in _MUTABLE_FIELDS)


def config_changes(old: dict, new: dict) -> list[str]:
  """Fields (other than run-length/logging ones) that differ between runs.

  Fields present on one side only (added or removed by a newer version of
  catgan_jax) are not changes: an upgrade must not strand a run.
  """
  keys = sorted(set(old) & set(new))
  return [
      f'{k}: {old.get(k)!r} -> {new.get(k)!r}'
      for k in keys
      if not _is_mutable(k) and old.get(k) != new.get(k)
  ]


def _has_checkpoints(workdir: str) -> bool:
  from catgan_jax import checkpoint  # pylint: disable=g-import-not-at-top

  folder = os.path.join(workdir, checkpoint.CHECKPOINT_DIR)
  return os.path.isdir(folder) and any(
      name.isdigit() for name in os.listdir(folder)
  )


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses a workdir holding a run of another config.

  A run's checkpoints without the config they were written with (its
  config.json deleted) cannot be checked either, and are refused too.
  `allow_config_change` lets both through (the checkpoint's layout is
  still checked against the config). Whether the workdir can be written
  is `workdir.check_writable`'s job.

  Args:
    config: the run config.
    workdir: the run directory (may not exist yet).

  Raises:
    ConfigError: naming the workdir or the changed fields.
  """
  if config.allow_config_change:
    return
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    _require(
        not _has_checkpoints(workdir),
        f'workdir={workdir!r} holds checkpoints but no {CONFIG_FILE} to '
        'check this config against; restore it, or resume anyway with '
        '--config.allow_config_change=True',
    )
    return
  old = _flatten(load_config(workdir))
  changes = config_changes(old, _flatten(config))
  _require(
      not changes,
      f'workdir={workdir!r} holds a run with a different config '
      f'({"; ".join(changes[:5])}); use another workdir or '
      '--config.allow_config_change=True',
  )


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes the config of this run to `workdir/config.json` (process 0)."""
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  tmp = os.path.join(workdir, CONFIG_FILE + '.tmp')
  with open(tmp, 'w') as f:
    f.write(config.to_json_best_effort(indent=2))
  os.replace(tmp, os.path.join(workdir, CONFIG_FILE))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """Reads the config a run in `workdir` was started with.

  Raises:
    ConfigError: the file is missing, unreadable or not a config.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise ConfigError(
        f'no run in workdir={workdir!r}: {CONFIG_FILE} is ' 'missing'
    )
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ConfigError(
        f'{path} cannot be read ({e}); restore it, or use ' 'another workdir'
    ) from None
  missing = (
      [f for f in _RECORDED_FIELDS if f not in record]
      if isinstance(record, dict)
      else ['a JSON object']
  )
  if missing:
    raise ConfigError(
        f'{path} does not hold a run\'s config (no {", ".join(missing)}); '
        'restore it, or use another workdir'
    )
  return ml_collections.ConfigDict(record)


def changed_fields(
    config: ml_collections.ConfigDict, workdir: str
) -> list[str]:
  """`config_changes` between the workdir's recorded config and `config`."""
  if not os.path.isfile(os.path.join(workdir, CONFIG_FILE)):
    return []
  return config_changes(_flatten(load_config(workdir)), _flatten(config))
