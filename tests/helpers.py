"""Shared test helpers: the files beside the repository, config overrides.

The project never reads `../shared` by itself; tests that need the real cat
faces or the MobileNetV2 weights pass these paths explicitly and skip when
they are absent (a user's clone has nothing beside it).
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), 'shared')
CAT_FACES = os.path.join(SHARED, 'data', 'cat_faces_64')
MOBILENET = os.path.join(SHARED, 'models', 'mobilenet_v2',
                         'mobilenet_v2_1.0_224_quant.tflite')
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
