"""Feature networks for FID/KID, looked up by name (`eval.features`).

`get_feature_fn(name, path)` returns a function from a batch of images
(float NHWC in [-1, 1], any size, 1 or 3 channels) to features [N, D]. The
images are resized bilinearly to the network's input size and run through a
jitted Flax network on the default JAX device, in fixed-size chunks so that
one compilation serves every batch.

Backends:
  mobilenet_v2: ImageNet MobileNetV2 (1280-d), from a TFLite file shipped
    with the project's shared data; runs offline. Its scores compare runs with
    each other, not with published FIDs.
  inception_v3: the standard FID network (2048-d pool3); published FIDs use
    it. Weights from pytorch-fid's file, downloaded once when online.
"""

from collections.abc import Callable
import functools
import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from catgan_jax.evaluation import inception_v3
from catgan_jax.evaluation import mobilenet_v2

FeatureFn = Callable[[np.ndarray], np.ndarray]


def _missing(name: str, path: str, extra: str = '') -> ValueError:
  return ValueError(
      f'Weights of the {name!r} feature network not found at {path!r}. Set '
      f'the config field eval.features_path to the weights file.{extra}'
  )


def _load_mobilenet_v2(path: str):
  path = path or mobilenet_v2.default_path()
  if not os.path.isfile(path):
    raise _missing('mobilenet_v2', path, ' It is mobilenet_v2_1.0_224_quant'
                   '.tflite from shared/models/mobilenet_v2/.')
  variables = {'params': mobilenet_v2.load_tflite_params(path)}
  return mobilenet_v2.MobileNetV2(), variables, mobilenet_v2.INPUT_SIZE


def _load_inception_v3(path: str):
  if not path:
    path = inception_v3.default_path()
    if not os.path.isfile(path):
      try:
        inception_v3.download_weights(path)
      except (OSError, ValueError) as e:
        raise _missing(
            'inception_v3', path,
            f' Downloading {inception_v3.WEIGHTS_URL} failed ({e}); download '
            'it by hand (a PyTorch state dict, or an .npz of the same '
            'tensors).') from e
  if not os.path.isfile(path):
    raise _missing('inception_v3', path, ' Expected pytorch-fid\'s '
                   f'{inception_v3.WEIGHTS_FILE} or an .npz of its tensors.')
  variables = inception_v3.load_variables(path)
  return inception_v3.InceptionV3(), variables, inception_v3.INPUT_SIZE


# name -> loader(path) -> (Flax module, variables, input size).
FEATURES = {
    'mobilenet_v2': _load_mobilenet_v2,
    'inception_v3': _load_inception_v3,
}
FEATURE_DIMS = {
    'mobilenet_v2': mobilenet_v2.FEATURE_DIM,
    'inception_v3': inception_v3.FEATURE_DIM,
}


def resize(images: jnp.ndarray, size: int) -> jnp.ndarray:
  """Bilinear resize to size x size, as torch's align_corners=False.

  No antialiasing, as in the reference FID code (pytorch-fid).
  """
  n, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  return jax.image.resize(images, (n, size, size, c), 'bilinear',
                          antialias=False)


def get_feature_fn(
    name: str, path: str = '', batch_size: int = 64
) -> FeatureFn:
  """Builds the feature function of a registered network.

  Built once per (name, path, batch_size) in a process: later calls return
  the same function, already loaded and compiled.

  Args:
    name: a key of FEATURES.
    path: weights file ('' = the backend's default location).
    batch_size: images per call of the jitted network; larger inputs are
      split, smaller ones padded, so that it compiles once per image size.

  Returns:
    A function mapping float images [N, H, W, C] in [-1, 1] to features
    [N, D] (float32 NumPy).

  Raises:
    ValueError: for an unknown name or a missing weights file.
  """
  if name not in FEATURES:
    raise ValueError(
        f'Unknown feature network {name!r}; valid: {sorted(FEATURES)}.')
  return _build_feature_fn(name, path, batch_size)


@functools.lru_cache(maxsize=4)
def _build_feature_fn(name: str, path: str, batch_size: int) -> FeatureFn:
  """get_feature_fn without the cache; see there."""
  module, variables, size = FEATURES[name](path)
  variables = jax.device_put(variables)
  logging.info('Feature network %s loaded (input %dx%d).', name, size, size)

  @jax.jit
  def forward(variables, images):
    return module.apply(variables, resize(images, size))

  def feature_fn(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(
          f'Expected images [N, H, W, 1|3], got shape {images.shape}.')
    if images.shape[-1] == 1:
      images = np.repeat(images, 3, axis=-1)
    n = images.shape[0]
    outputs = []
    for start in range(0, n, batch_size):
      chunk = images[start:start + batch_size]
      pad = batch_size - chunk.shape[0]
      if pad:
        chunk = np.concatenate(
            [chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
      outputs.append(np.asarray(forward(variables, chunk))[:batch_size - pad])
    if not outputs:
      return np.zeros((0, FEATURE_DIMS[name]), np.float32)
    return np.concatenate(outputs).astype(np.float32)

  return feature_fn
