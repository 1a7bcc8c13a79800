"""Shared test helpers: the files beside the repository, config overrides.

The project never reads `../shared` by itself; tests that need the real cat
faces or the MobileNetV2 weights pass these paths explicitly and skip when
they are absent (a user's clone has nothing beside it).
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), 'shared')
CAT_FACES = os.path.join(SHARED, 'data', 'cat_faces_64')
MOBILENET = os.path.join(
    SHARED, 'models', 'mobilenet_v2', 'mobilenet_v2_1.0_224_quant.tflite'
)
HAS_CAT_FACES = os.path.isdir(CAT_FACES)
HAS_MOBILENET = os.path.isfile(MOBILENET)


def override(config, **overrides):
  """Sets dotted fields of `config` ('model.g_width': 16, ...); returns it."""
  for field, value in overrides.items():
    node = config
    *parents, leaf = field.split('.')
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


def config_with(**overrides):
  """configs/test.py with dotted-field overrides."""
  from configs import test  # pylint: disable=g-import-not-at-top

  return override(test.get_config(), **overrides)


def experiment_configs() -> list[str]:
  """Every shipped config as `file[:argument]`: 'dcgan64', 'relativistic:rsgan'.

  A config file that holds several experiments lists their `--config`
  arguments in `EXPERIMENTS`; each is a config of its own here.
  """
  import glob  # pylint: disable=g-import-not-at-top

  names = []
  for path in sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py'))):
    name = os.path.basename(path)[:-3]
    if name == '__init__':
      continue
    arguments = getattr(load_config_module(name), 'EXPERIMENTS', ())
    names += [f'{name}:{arg}' for arg in arguments] or [name]
  return names


def load_config_module(name: str):
  """The module of config `name` ('file' or 'file:argument')."""
  import importlib  # pylint: disable=g-import-not-at-top

  return importlib.import_module(f'configs.{name.partition(":")[0]}')


def load_config(name: str):
  """The config `--config=configs/<file>.py[:<argument>]` gives."""
  argument = name.partition(':')[2]
  module = load_config_module(name)
  return module.get_config(argument) if argument else module.get_config()


def config_flag(name: str) -> str:
  """The --config value of config `name`."""
  file, sep, argument = name.partition(':')
  return f'configs/{file}.py{sep}{argument}'


def tracked_files(pattern: str = '') -> list[str]:
  """The files git tracks in the repository (matching `pattern`, if given).

  Skips the calling test outside a git checkout.
  """
  import subprocess  # pylint: disable=g-import-not-at-top
  import pytest  # pylint: disable=g-import-not-at-top

  try:
    out = subprocess.run(
        ['git', 'ls-files', '-z', *([pattern] if pattern else [])],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
  except (OSError, subprocess.CalledProcessError):
    pytest.skip('not a git checkout')
  return [p for p in out.split('\0') if p]
