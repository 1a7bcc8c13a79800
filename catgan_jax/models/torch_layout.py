"""PyTorch's weight layouts of the DCGAN layers, both ways.

catgan_jax's DCGAN holds the same parameters as the PyTorch DCGAN recipe
(`models/dcgan.py`), laid out the flax way. These are the maps between the
two, used to load PyTorch weights (the parity test) and to hand catgan_jax's
weights to PyTorch (`tools/torch_peer/peer_equivalence.py`):

* `Conv2d` weight [out, in, kh, kw] <-> flax `Conv` kernel [kh, kw, in, out].
* `ConvTranspose2d` weight [in, out, kh, kw] <-> flax `ConvTranspose` (and
  `layers.ConvTranspose2x`) kernel [kh, kw, in, out], spatially flipped:
  PyTorch's transposed convolution is the gradient of a convolution and
  applies its kernel flipped; flax's does not flip it.
* The recipe's first `ConvTranspose2d(nz, c, 4, 1, 0)` on a 1x1 latent,
  weight [nz, c, 4, 4] <-> the `Dense` kernel [nz, 4 * 4 * c] whose output
  is reshaped to NHWC [4, 4, c].
"""

import numpy as np


def conv_from_torch(weight: np.ndarray) -> np.ndarray:
  """`Conv2d` weight [out, in, kh, kw] -> flax kernel [kh, kw, in, out]."""
  return np.asarray(weight).transpose(2, 3, 1, 0)


def conv_to_torch(kernel: np.ndarray) -> np.ndarray:
  """Flax `Conv` kernel [kh, kw, in, out] -> `Conv2d` weight."""
  return np.asarray(kernel).transpose(3, 2, 0, 1)


def conv_transpose_from_torch(weight: np.ndarray) -> np.ndarray:
  """`ConvTranspose2d` weight [in, out, kh, kw] -> flax kernel (flipped)."""
  return np.flip(np.asarray(weight), (2, 3)).transpose(2, 3, 0, 1)


def conv_transpose_to_torch(kernel: np.ndarray) -> np.ndarray:
  """Flax `ConvTranspose` kernel [kh, kw, in, out] -> `ConvTranspose2d`."""
  return np.flip(np.asarray(kernel), (0, 1)).transpose(2, 3, 0, 1)


def dense_from_torch(weight: np.ndarray) -> np.ndarray:
  """First `ConvTranspose2d` weight [nz, c, h, w] -> Dense [nz, h * w * c]."""
  weight = np.asarray(weight)
  return weight.transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def dense_to_torch(kernel: np.ndarray, size: int = 4) -> np.ndarray:
  """Dense kernel [nz, size * size * c] -> `ConvTranspose2d` [nz, c, size,
  size] on a 1x1 input."""
  kernel = np.asarray(kernel)
  channels = kernel.shape[1] // (size * size)
  return kernel.reshape(-1, size, size, channels).transpose(0, 3, 1, 2)
