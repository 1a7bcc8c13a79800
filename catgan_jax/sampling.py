"""Pictures of a generator: image grids, PNG/GIF files and latent interpolation.

Everything here works on NumPy arrays so that it can be called on the host
after samples have been copied off the device. Images follow the project
convention: float NHWC in [-1, 1].
"""

from collections.abc import Sequence
import math
import os

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Maps float images in [-1, 1] to uint8 in [0, 255] (values are clipped).

  Args:
    images: float array of any shape with values in [-1, 1].

  Returns:
    A uint8 array of the same shape.
  """
  images = np.asarray(images, dtype=np.float32)
  return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def pixel_std_across_samples(images: np.ndarray) -> float:
  """How different a batch of samples is from its mean sample.

  The standard deviation of every pixel across the batch, averaged over the
  pixels, with images mapped to [0, 1]. A generator that has collapsed to one
  output scores near 0 whatever that output looks like; 64 real cat faces
  score 0.24-0.26. (An untrained DCGAN generator in eval mode scores 0.001:
  its BatchNorm running statistics are still the initial ones.) It is cheap
  enough to log at every sample grid, and it is the number the PyTorch
  cross-check (`tools/torch_peer/peer_training_curve.py`) reports too.

  Args:
    images: float images in [-1, 1], shape [N, H, W, C] with N >= 2.

  Returns:
    The mean pixel std, a float in [0, 0.5].
  """
  images = np.asarray(images, dtype=np.float32)
  if images.ndim != 4 or images.shape[0] < 2:
    raise ValueError(
        'pixel_std_across_samples needs a batch [N, H, W, C] of '
        f'at least 2 images; got shape {images.shape}.'
    )
  return float(np.mean(np.std(images * 0.5, axis=0)))


def make_grid(
    images: np.ndarray, ncol: int | None = None, padding: int = 2
) -> np.ndarray:
  """Tiles a batch of images into one picture.

  Args:
    images: float images in [-1, 1], shape [N, H, W, C] with C in {1, 3}.
    ncol: number of columns; default ceil(sqrt(N)), a square-ish grid.
    padding: pixels of black border around and between the tiles.

  Returns:
    A uint8 array [rows * (H + p) + p, ncol * (W + p) + p, 3].

  Raises:
    ValueError: if `images` is not a non-empty 4-D batch with 1 or 3 channels.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] not in (1, 3):
    raise ValueError(
        'make_grid expects a non-empty NHWC batch with 1 or 3 channels, got '
        f'shape {images.shape}.'
    )
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  n, h, w, _ = images.shape
  ncol = ncol or math.ceil(math.sqrt(n))
  ncol = min(ncol, n)
  nrow = math.ceil(n / ncol)
  grid = np.zeros(
      (nrow * (h + padding) + padding, ncol * (w + padding) + padding, 3),
      dtype=np.uint8,
  )
  tiles = to_uint8(images)
  for i in range(n):
    top = padding + (i // ncol) * (h + padding)
    left = padding + (i % ncol) * (w + padding)
    grid[top : top + h, left : left + w] = tiles[i]
  return grid


def _as_uint8_rgb(image: np.ndarray) -> np.ndarray:
  """uint8 images pass through; float images in [-1, 1] are converted."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = to_uint8(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  return image


def save_png(image: np.ndarray, path: str | os.PathLike[str]) -> None:
  """Writes one image as PNG, creating parent directories.

  Args:
    image: uint8 [H, W, 3|1] or [H, W], or float in [-1, 1] of the same shapes.
    path: destination file.
  """
  os.makedirs(os.path.dirname(os.fspath(path)) or '.', exist_ok=True)
  Image.fromarray(_as_uint8_rgb(image)).save(path, format='PNG')


def save_gif(
    frames: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    duration_ms: int = 200,
) -> None:
  """Writes an animated, looping GIF, creating parent directories.

  Identical consecutive frames are stored (by Pillow) as one frame shown for
  their summed duration, so the animation's timing is kept.

  Args:
    frames: images of equal shape, uint8 or float in [-1, 1] (see save_png).
    path: destination file.
    duration_ms: display time of each frame.

  Raises:
    ValueError: if `frames` is empty.
  """
  if not frames:
    raise ValueError('save_gif needs at least one frame.')
  os.makedirs(os.path.dirname(os.fspath(path)) or '.', exist_ok=True)
  pictures = [Image.fromarray(_as_uint8_rgb(f)) for f in frames]
  pictures[0].save(
      path,
      format='GIF',
      save_all=True,
      append_images=pictures[1:],
      duration=duration_ms,
      loop=0,
  )


def interpolate(
    z0: np.ndarray, z1: np.ndarray, num: int, spherical: bool = True
) -> np.ndarray:
  """Latent vectors evenly spaced from z0 to z1 (both ends included).

  Spherical interpolation keeps the norm of Gaussian latents typical along the
  path; a straight line passes through low-norm points the generator rarely
  saw during training.

  Args:
    z0: start latent, shape [D] (or any shape; it is flattened and restored).
    z1: end latent, same shape as z0.
    num: number of points, >= 2.
    spherical: slerp if True, linear interpolation otherwise.

  Returns:
    Array [num, *z0.shape] with out[0] == z0 and out[-1] == z1.

  Raises:
    ValueError: on mismatched shapes or num < 2.
  """
  z0 = np.asarray(z0, dtype=np.float32)
  z1 = np.asarray(z1, dtype=np.float32)
  if z0.shape != z1.shape:
    raise ValueError(f'z0 and z1 differ in shape: {z0.shape} vs {z1.shape}.')
  if num < 2:
    raise ValueError(f'interpolate needs num >= 2, got {num}.')
  t = np.linspace(0.0, 1.0, num, dtype=np.float32)[:, None]
  a, b = z0.reshape(1, -1), z1.reshape(1, -1)
  if spherical:
    cos = np.sum(a * b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    # Nearly parallel latents: slerp degenerates to lerp (and sin(omega) ~ 0).
    if np.sin(omega) > 1e-6:
      out = (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(
          omega
      )
      out[0], out[-1] = a[0], b[0]
      return out.reshape((num,) + z0.shape).astype(np.float32)
  out = (1.0 - t) * a + t * b
  return out.reshape((num,) + z0.shape).astype(np.float32)
