"""The standard FID feature network: TF's 2015-12-05 InceptionV3, in Flax.

This is the network of the reference FID implementations (TTUR, and
pytorch-fid's `fid_inception_v3`): torchvision's InceptionV3 layout with the
FID-specific blocks (average pools that ignore padding, a max pool in the last
block) and the weights of TF's `inception-2015-12-05` graph. Features are the
2048-d global average pool ("pool3").

Protocol (as pytorch-fid): images in [-1, 1] are resized to 299x299 with
bilinear interpolation (half-pixel centres, no antialiasing, i.e. torch's
`F.interpolate(..., mode='bilinear', align_corners=False)`), then fed to the
network, which expects [-1, 1].

With `with_logits=True` the network also returns the 1008 ImageNet logits of
the graph's classifier (`fc`), without its bias, the logits the Inception
Score is defined on (openai/improved-gan's `inception_score/model.py`
multiplies pool3 by the `softmax/logits/MatMul` weights only; torch-fidelity's
'logits_unbiased' is the same). The pool3 features are computed exactly as
without it.

Weights: pytorch-fid's published state dict
`pt_inception-2015-12-05-6726825d.pth` (PyTorch's legacy format, read here
without torch, see `torch_weights.py`), or an `.npz` holding the same keys
(`np.savez(path, **{k: v.numpy() for k, v in state_dict.items()})`). Module
names below match its keys: `Mixed_5b.branch1x1.conv.weight` is the kernel of
`Mixed_5b/branch1x1/conv`. Torch kernels [O, I, H, W] become Flax [H, W, I, O].
"""

import functools
import hashlib
import os
import tempfile
import urllib.request

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from catgan_jax.evaluation import torch_weights

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
WEIGHTS_URL = (
    'https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
    'pt_inception-2015-12-05-6726825d.pth'
)
WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth'
# torch.hub convention: the hex in the file name starts the file's SHA-256.
WEIGHTS_SHA256_PREFIX = '6726825d'


def _pairs(value) -> tuple[int, int]:
  return (value, value) if isinstance(value, int) else tuple(value)


class BasicConv2d(nn.Module):
  """Conv (no bias) -> BatchNorm (eps 1e-3, running statistics) -> ReLU."""

  features: int
  kernel_size: int | tuple[int, int]
  strides: int = 1
  padding: int | tuple[int, int] = 0

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    ph, pw = _pairs(self.padding)
    x = nn.Conv(
        self.features,
        _pairs(self.kernel_size),
        strides=_pairs(self.strides),
        padding=((ph, ph), (pw, pw)),
        use_bias=False,
        name='conv',
    )(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jnp.ndarray) -> jnp.ndarray:
  # TF's average pool divides by the number of real (unpadded) pixels.
  return nn.avg_pool(
      x,
      (3, 3),
      strides=(1, 1),
      padding=((1, 1), (1, 1)),
      count_include_pad=False,
  )


class InceptionA(nn.Module):
  """Mixed_5b/c/d: 35x35 blocks."""

  pool_features: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    b1 = BasicConv2d(64, 1, name='branch1x1')(x)
    b5 = BasicConv2d(48, 1, name='branch5x5_1')(x)
    b5 = BasicConv2d(64, 5, padding=2, name='branch5x5_2')(b5)
    b3 = BasicConv2d(64, 1, name='branch3x3dbl_1')(x)
    b3 = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_2')(b3)
    b3 = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_3')(b3)
    bp = BasicConv2d(self.pool_features, 1, name='branch_pool')(
        _avg_pool_3x3(x)
    )
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: 35x35 -> 17x17."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    b3 = BasicConv2d(384, 3, strides=2, name='branch3x3')(x)
    bd = BasicConv2d(64, 1, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = BasicConv2d(96, 3, strides=2, name='branch3x3dbl_3')(bd)
    bp = nn.max_pool(x, (3, 3), strides=(2, 2))
    return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b/c/d/e: 17x17 blocks with factorised 7x7 convolutions."""

  channels_7x7: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    c7 = self.channels_7x7
    b1 = BasicConv2d(192, 1, name='branch1x1')(x)
    b7 = BasicConv2d(c7, 1, name='branch7x7_1')(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = BasicConv2d(c7, 1, name='branch7x7dbl_1')(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = BasicConv2d(192, 1, name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: 17x17 -> 8x8."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    b3 = BasicConv2d(192, 1, name='branch3x3_1')(x)
    b3 = BasicConv2d(320, 3, strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv2d(192, 1, name='branch7x7x3_1')(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv2d(192, 3, strides=2, name='branch7x7x3_4')(b7)
    bp = nn.max_pool(x, (3, 3), strides=(2, 2))
    return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b/c: 8x8 blocks with split 3x3 convolutions.

  The FID network pools with an average (ignoring padding) in Mixed_7b and,
  unlike the paper, with a max in Mixed_7c (`max_pool=True`).
  """

  max_pool: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    b1 = BasicConv2d(320, 1, name='branch1x1')(x)
    b3 = BasicConv2d(384, 1, name='branch3x3_1')(x)
    b3 = jnp.concatenate(
        [
            BasicConv2d(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
            BasicConv2d(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3),
        ],
        axis=-1,
    )
    bd = BasicConv2d(448, 1, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(384, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate(
        [
            BasicConv2d(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(
                bd
            ),
            BasicConv2d(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(
                bd
            ),
        ],
        axis=-1,
    )
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_3x3(x)
    bp = BasicConv2d(192, 1, name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """FID InceptionV3: [N, 299, 299, 3] in [-1, 1] -> pool3 [N, 2048].

  Attributes:
    with_logits: also return the classifier's logits [N, 1008] (without its
      bias, see the module docstring): (pool3, logits).
  """

  with_logits: bool = False

  @nn.compact
  def __call__(
      self, x: jnp.ndarray
  ) -> jnp.ndarray | tuple[jnp.ndarray, jnp.ndarray]:
    x = BasicConv2d(32, 3, strides=2, name='Conv2d_1a_3x3')(x)
    x = BasicConv2d(32, 3, name='Conv2d_2a_3x3')(x)
    x = BasicConv2d(64, 3, padding=1, name='Conv2d_2b_3x3')(x)
    x = nn.max_pool(x, (3, 3), strides=(2, 2))
    x = BasicConv2d(80, 1, name='Conv2d_3b_1x1')(x)
    x = BasicConv2d(192, 3, name='Conv2d_4a_3x3')(x)
    x = nn.max_pool(x, (3, 3), strides=(2, 2))
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    x = InceptionC(128, name='Mixed_6b')(x)
    x = InceptionC(160, name='Mixed_6c')(x)
    x = InceptionC(160, name='Mixed_6d')(x)
    x = InceptionC(192, name='Mixed_6e')(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    pool = jnp.mean(x, axis=(1, 2))
    if not self.with_logits:
      return pool
    return pool, nn.Dense(NUM_CLASSES, use_bias=False, name='fc')(pool)


# Torch parameter suffix -> (Flax collection, leaf name).
_SUFFIXES = {
    'conv.weight': ('params', 'kernel'),
    'bn.weight': ('params', 'scale'),
    'bn.bias': ('params', 'bias'),
    'bn.running_mean': ('batch_stats', 'mean'),
    'bn.running_var': ('batch_stats', 'var'),
}


@functools.cache
def abstract_variables() -> dict:
  """Shapes and dtypes of the network's variables (no computation)."""
  return jax.eval_shape(
      InceptionV3().init,
      jax.random.key(0),
      jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)),
  )


def variables_from_state_dict(state: dict[str, np.ndarray]) -> dict:
  """Maps the FID Inception state dict to Flax variables.

  Args:
    state: {torch name: array}. BatchNorm step counters are ignored; the
      classifier's weight `fc.weight`, when present, becomes `params/fc`
      (its bias is not used, see the module docstring).

  Returns:
    {'params': ..., 'batch_stats': ...} for `InceptionV3().apply`, and for
    `InceptionV3(with_logits=True).apply` when `fc.weight` is given.

  Raises:
    ValueError: if names or shapes do not match the network.
  """
  abstract = abstract_variables()
  variables = {'params': {}, 'batch_stats': {}}
  used = set()
  for name, value in state.items():
    if name == 'fc.weight':
      value = np.asarray(value, dtype=np.float32)
      if value.shape != (NUM_CLASSES, FEATURE_DIM):
        raise ValueError(
            f'fc.weight: shape {value.shape}, expected '
            f'{(NUM_CLASSES, FEATURE_DIM)}.'
        )
      variables['params']['fc'] = {'kernel': value.T}  # [out, in] -> [in, out]
      continue
    if name.startswith('fc.') or name.endswith('num_batches_tracked'):
      continue
    parts = name.split('.')
    suffix = '.'.join(parts[-2:])
    if suffix not in _SUFFIXES:
      raise ValueError(f'Unexpected parameter {name!r} in the weights.')
    collection, leaf = _SUFFIXES[suffix]
    path = parts[:-2] + [parts[-2]]
    value = np.asarray(value, dtype=np.float32)
    if leaf == 'kernel':
      value = value.transpose(2, 3, 1, 0)  # [O, I, H, W] -> [H, W, I, O].
    expected = abstract[collection]
    try:
      for part in path:
        expected = expected[part]
      expected = expected[leaf]
    except KeyError:
      raise ValueError(
          f'Unexpected parameter {name!r} in the weights.'
      ) from None
    if tuple(expected.shape) != value.shape:
      raise ValueError(
          f'{name}: shape {value.shape} (as Flax), expected {expected.shape}.'
      )
    node = variables[collection]
    for part in path:
      node = node.setdefault(part, {})
    node[leaf] = value
    used.add((collection, *path, leaf))
  missing = [
      '/'.join(str(getattr(k, 'key', k)) for k in key_path)
      for key_path, _ in jax.tree_util.tree_leaves_with_path(abstract)
      if tuple(str(getattr(k, 'key', k)) for k in key_path) not in used
  ]
  if missing:
    raise ValueError(
        f'{len(missing)} parameters missing from the weights, e.g. '
        f'{missing[:3]}.'
    )
  return variables


def load_variables(path: str) -> dict:
  """Loads FID Inception weights from a `.pth` state dict or an `.npz`."""
  if path.endswith('.npz'):
    with np.load(path) as data:
      state = {k: data[k] for k in data.files}
  else:
    state = torch_weights.load(path)
  return variables_from_state_dict(state)


def download_weights(
    path: str, url: str = WEIGHTS_URL, timeout: float | None = None
) -> str:
  """Downloads the published weights to `path` and checks their SHA-256.

  Args:
    path: destination file; the download goes to a temporary file first and
      is renamed only once verified.
    url: where to download from.
    timeout: seconds a connection may stall (None = the system's).

  Returns:
    `path`.

  Raises:
    ValueError: if the checksum does not match.
  """
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  logging.info('Downloading the FID Inception weights from %s', url)
  digest = hashlib.sha256()
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.')
  try:
    with (
        os.fdopen(fd, 'wb') as out,
        urllib.request.urlopen(url, timeout=timeout) as response,
    ):
      while chunk := response.read(1 << 20):
        digest.update(chunk)
        out.write(chunk)
    if not digest.hexdigest().startswith(WEIGHTS_SHA256_PREFIX):
      raise ValueError(
          f'Checksum mismatch for {url}: sha256 {digest.hexdigest()} does not '
          f'start with {WEIGHTS_SHA256_PREFIX}.'
      )
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def default_path() -> str:
  """Where the weights are looked for (and downloaded to) by default."""
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache'
  )
  return os.path.join(cache, 'catgan_jax', WEIGHTS_FILE)
