"""Input side of catgan_jax: image sources, cleaning and the tf.data pipeline.

``create_input_iter(config, local_batch_size=...)`` yields uint8 batches of real
images for one process; ``validate_data_config(config)`` checks ``config.data``
before any work. Sources are registered by name in ``SOURCES``.

The names are imported lazily so that the command-line tools of this package
(``scan``, ``prepare_cat``) do not pay for importing TensorFlow.
The differentiable augmentation runs inside the train step: it lives beside
it, in ``catgan_jax/diffaugment.py``.
"""

import importlib
from typing import Any

_EXPORTS = {
    'create_dataset': 'catgan_jax.data.pipeline',
    'create_input_iter': 'catgan_jax.data.pipeline',
    'validate_data_config': 'catgan_jax.data.sources',
    'SOURCES': 'catgan_jax.data.sources',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name in _EXPORTS:
    return getattr(importlib.import_module(_EXPORTS[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
