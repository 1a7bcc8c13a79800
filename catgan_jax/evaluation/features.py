"""Feature networks for FID/KID and IS, looked up by name (`eval.features`).

`get_network_fn(name, path)` returns a function from a batch of images
(float NHWC in [-1, 1], any size, 1 or 3 channels) to `Outputs`: features
[N, D] and the network's class probabilities [N, K] (the softmax of its
classifier's logits, in float64), both from one forward pass.
`get_feature_fn(name, path)` is the same pass giving the features only. The
images are resized bilinearly to the network's input size and run through a
jitted Flax network on the default JAX device, in fixed-size chunks so that
one compilation serves every batch.

Backends:
  inception_v3 (the default): the standard FID network (2048-d pool3,
    1008 classes); published FIDs and Inception Scores use it. Weights from
    pytorch-fid's file, downloaded once into ~/.cache/catgan_jax with their
    SHA-256 checked, or read from `eval.features_path`.
  mobilenet_v2: ImageNet MobileNetV2 (1280-d, 1001 classes) from its TFLite
    file (`mobilenet_v2_1.0_224_quant.tflite`, Apache-2.0), named by
    `eval.features_path`; runs offline. Its scores compare runs with each
    other, not with published FIDs and Inception Scores.
  mobilenet_v2_inat: the same architecture trained on iNaturalist birds
    (`mobilenet_v2_1.0_224_inat_bird_quant.tflite`, 1280-d pool
    `AvgPool/AvgPool`, 965 classes), named by `eval.features_path`; offline.
    Its feature space owes nothing to ImageNet's classes: it scores runs
    whose discriminator looks through the ImageNet network (a projected
    discriminator), which can lower that network's FID without better
    images (Kynkaanniemi et al., ICLR 2023).
"""

from collections.abc import Callable
import functools
import os
from typing import NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from catgan_jax import cli
from catgan_jax.evaluation import inception_v3
from catgan_jax.evaluation import mobilenet_v2
from catgan_jax.evaluation import torch_weights


class Outputs(NamedTuple):
  """What one pass of a feature network gives for N images."""

  features: np.ndarray  # [N, D] float32: FID/KID.
  probs: np.ndarray  # [N, K] float64 class probabilities: IS.


FeatureFn = Callable[[np.ndarray], np.ndarray]
NetworkFn = Callable[[np.ndarray], Outputs]


MOBILENET_V2_FILE = 'mobilenet_v2_1.0_224_quant.tflite'
MOBILENET_V2_INAT_FILE = 'mobilenet_v2_1.0_224_inat_bird_quant.tflite'
# The weights file each TFLite backend reads (for the messages).
_TFLITE_FILES = {
    'mobilenet_v2': MOBILENET_V2_FILE,
    'mobilenet_v2_inat': MOBILENET_V2_INAT_FILE,
}
DOWNLOAD_TIMEOUT_S = 30


def _way_out(name: str) -> str:
  other = (
      '--config.eval.features=mobilenet_v2 with '
      f'--config.eval.features_path=/path/to/{MOBILENET_V2_FILE} '
      '(offline)'
      if name == 'inception_v3'
      else '--config.eval.features=inception_v3 (downloaded once)'
  )
  return (
      f'set --config.eval.features_path to the weights file, or use '
      f'{other}, or turn evaluation off with '
      '--config.eval.every_steps=-1'
  )


def _load_mobilenet_v2(path: str, name: str = 'mobilenet_v2'):
  if not path:
    raise cli.UserError(
        f"eval.features_path='': the {name} feature network needs its "
        f'weights file ({_TFLITE_FILES[name]}); ' + _way_out(name)
    )
  if not os.path.isfile(path):
    raise cli.UserError(
        f'eval.features_path={path!r} does not exist; ' + _way_out(name)
    )
  params = mobilenet_v2.load_tflite_params(path, classifier=True)
  num_classes = params['Logits']['bias'].shape[0]
  if num_classes != NUM_CLASSES[name]:
    raise ValueError(
        f'its classifier has {num_classes} classes, not {NUM_CLASSES[name]}'
    )
  return (
      mobilenet_v2.MobileNetV2(with_logits=True, num_classes=num_classes),
      {'params': params},
      mobilenet_v2.INPUT_SIZE,
  )


def _bad_inception_weights(path: str, cached: bool, error: Exception) -> str:
  """The line for a weights file that is cut short, or a bad download."""
  if isinstance(error, torch_weights.TruncatedError):
    problem = f'is truncated ({error.detail})'
  else:
    reason = str(error).splitlines()[0] if str(error) else ''
    problem = (
        f'is not an inception_v3 weights file ({type(error).__name__}: '
        f'{reason})'
    )
  if not cached:
    return f'eval.features_path={path!r} {problem}; ' + _way_out('inception_v3')
  return (
      f"eval.features_path='': the downloaded weights {path} {problem}; "
      'delete that file to download it again, or ' + _way_out('inception_v3')
  )


def _load_inception_v3(path: str):
  cached = not path
  if cached:
    path = inception_v3.default_path()
    if not os.path.isfile(path):
      try:
        inception_v3.download_weights(path, timeout=DOWNLOAD_TIMEOUT_S)
      except (OSError, ValueError) as e:
        reason = str(getattr(e, 'reason', e)) or type(e).__name__
        raise cli.UserError(
            "eval.features_path='': the inception_v3 weights are not in "
            f'{path} and downloading {inception_v3.WEIGHTS_URL} failed '
            f'({reason}); ' + _way_out('inception_v3')
        ) from None
  elif not os.path.isfile(path):
    raise cli.UserError(
        f'eval.features_path={path!r} does not exist; '
        + _way_out('inception_v3')
    )
  try:
    variables = inception_v3.load_variables(path)
    if 'fc' not in variables['params']:
      raise ValueError(
          'fc.weight is missing (the classifier of the Inception Score)'
      )
  except Exception as e:  # pylint: disable=broad-except
    # A file of something else fails in whatever parser reads it first.
    raise cli.UserError(_bad_inception_weights(path, cached, e)) from None
  return (
      inception_v3.InceptionV3(with_logits=True),
      variables,
      inception_v3.INPUT_SIZE,
  )


def load_network(name: str, path: str = ''):
  """(Flax module, variables, input size) of a feature network.

  The module returns (features, logits).

  Args:
    name: a key of FEATURES.
    path: its weights file ('' = inception_v3's cache, downloading once).

  Returns:
    The network, its variables and its square input size.

  Raises:
    cli.UserError: unknown name; weights missing, not downloadable, or not
      a weights file of that network (one line naming the field).
  """
  if name not in FEATURES:
    raise cli.UserError(
        f'eval.features={name!r} is unknown; valid: '
        f'{", ".join(sorted(FEATURES))}'
    )
  try:
    return FEATURES[name](path)
  except cli.UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # A file of something else fails in whatever parser reads it first
    # (struct.error, UnpicklingError, KeyError, ...).
    shown = path or 'the downloaded file'
    raise cli.UserError(
        f'eval.features_path={shown!r} is not a {name} weights file '
        f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}); '
        + _way_out(name)
    ) from None


# name -> loader(path) -> (Flax module, variables, input size).
FEATURES = {
    'mobilenet_v2': _load_mobilenet_v2,
    'mobilenet_v2_inat': functools.partial(
        _load_mobilenet_v2, name='mobilenet_v2_inat'
    ),
    'inception_v3': _load_inception_v3,
}
FEATURE_DIMS = {
    'mobilenet_v2': mobilenet_v2.FEATURE_DIM,
    'mobilenet_v2_inat': mobilenet_v2.FEATURE_DIM,
    'inception_v3': inception_v3.FEATURE_DIM,
}
NUM_CLASSES = {
    'mobilenet_v2': mobilenet_v2.NUM_CLASSES,
    'mobilenet_v2_inat': 965,
    'inception_v3': inception_v3.NUM_CLASSES,
}


def resize(images: jnp.ndarray, size: int) -> jnp.ndarray:
  """Bilinear resize to size x size, as torch's align_corners=False.

  No antialiasing, as in the reference FID code (pytorch-fid).
  """
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  return jax.image.resize(
      images, (n, size, size, c), 'bilinear', antialias=False
  )


def _check_name(name: str) -> None:
  if name not in FEATURES:
    raise cli.UserError(
        f'eval.features={name!r} is unknown; valid: '
        f'{", ".join(sorted(FEATURES))}'
    )


def get_network_fn(
    name: str, path: str = '', batch_size: int = 64
) -> NetworkFn:
  """Builds the function giving features and class probabilities.

  Built once per (name, path, batch_size) in a process, and shared with
  `get_feature_fn`: one loading and one compilation serve both.

  Args:
    name: a key of FEATURES.
    path: weights file ('' = the backend's default location).
    batch_size: images per call of the jitted network; larger inputs are
      split, smaller ones padded, so that it compiles once per image size.

  Returns:
    A function mapping float images [N, H, W, C] in [-1, 1] to `Outputs`:
    features [N, D] (float32 NumPy) and the softmax of the classifier's
    logits [N, K] (float64, computed from the float32 logits).

  Raises:
    cli.UserError: for an unknown name or missing or unusable weights.
  """
  _check_name(name)
  return _build_network_fn(name, path, batch_size)


def get_feature_fn(
    name: str, path: str = '', batch_size: int = 64
) -> FeatureFn:
  """Builds the feature function of a registered network.

  Built once per (name, path, batch_size) in a process: later calls return
  the same function, already loaded and compiled (the pass of
  `get_network_fn`, features only).

  Args:
    name: a key of FEATURES.
    path: weights file ('' = the backend's default location).
    batch_size: images per call of the jitted network; larger inputs are
      split, smaller ones padded, so that it compiles once per image size.

  Returns:
    A function mapping float images [N, H, W, C] in [-1, 1] to features
    [N, D] (float32 NumPy).

  Raises:
    cli.UserError: for an unknown name or missing or unusable weights.
  """
  _check_name(name)
  return _build_feature_fn(name, path, batch_size)


@functools.lru_cache(maxsize=4)
def _build_feature_fn(name: str, path: str, batch_size: int) -> FeatureFn:
  """get_feature_fn without the cache; see there."""
  network_fn = _build_network_fn(name, path, batch_size)
  return lambda images: network_fn(images).features


@functools.lru_cache(maxsize=4)
def _build_network_fn(name: str, path: str, batch_size: int) -> NetworkFn:
  """get_network_fn without the cache; see there."""
  module, variables, size = load_network(name, path)
  variables = jax.device_put(variables)
  logging.info('Feature network %s loaded (input %dx%d).', name, size, size)

  @jax.jit
  def forward(variables, images):
    return module.apply(variables, resize(images, size))

  def network_fn(images: np.ndarray) -> Outputs:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(
          f'Expected images [N, H, W, 1|3], got shape {images.shape}.'
      )
    if images.shape[-1] == 1:
      images = np.repeat(images, 3, axis=-1)
    n = images.shape[0]
    features, logits = [], []
    for start in range(0, n, batch_size):
      chunk = images[start : start + batch_size]
      pad = batch_size - chunk.shape[0]
      if pad:
        chunk = np.concatenate(
            [chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)]
        )
      pool, chunk_logits = jax.device_get(forward(variables, chunk))
      features.append(np.asarray(pool)[: batch_size - pad])
      logits.append(np.asarray(chunk_logits)[: batch_size - pad])
    if not features:
      return Outputs(
          np.zeros((0, FEATURE_DIMS[name]), np.float32),
          np.zeros((0, NUM_CLASSES[name]), np.float64),
      )
    probs = scipy.special.softmax(
        np.concatenate(logits).astype(np.float64), axis=-1
    )
    return Outputs(np.concatenate(features).astype(np.float32), probs)

  return network_fn
