"""Turns one image file (any format, mode and orientation) into a square RGB array.

This is the deterministic per-image half of the input pipeline: decode with PIL,
apply the EXIF orientation, convert every PIL mode to 8-bit RGB (alpha is
composited on a background colour), reject images that are too small, crop to a
square and resize with antialiasing. The random half (random crops, flips) runs
per element in tf.data, see ``pipeline.py``.

It also holds the geometry of the CAT data set's landmark crop (eyes level,
width from the ear bases), used by ``prepare_cat.py``.
"""

import dataclasses
import io
import math
import os
from typing import Any, BinaryIO, Sequence

import numpy as np
from PIL import Image
from PIL import ImageOps

# Extensions the folder source reads (lower case). GIFs contribute their first frame.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.gif')
CROPS = ('center', 'random', 'none', 'squash')
# Largest cache side relative to the training size when random resized crops
# need more pixels than the final image: beyond this the crop is upsampled.
_MAX_CACHE_FACTOR = 2.0


class UnusableImageError(Exception):
  """An image that cannot be used.

  ``reason`` is 'not_image' (no image format recognised), 'unreadable'
  (empty, truncated or corrupt) or 'too_small'.
  """

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason


def cache_side(image_size: int, rrc_min_scale: float = 1.0) -> int:
  """Side of the stored (cached) square before the random per-element crops.

  Random resized crops keep a fraction ``scale`` of the area, so the stored image
  is larger than the training size to avoid upsampling the crop (up to a cap).

  Args:
    image_size: side of the training images.
    rrc_min_scale: smallest area fraction of a random resized crop (1 = off).

  Returns:
    The side, in pixels, of the images kept between decoding and augmentation.
  """
  if rrc_min_scale >= 1.0:
    return image_size
  factor = min(1.0 / math.sqrt(rrc_min_scale), _MAX_CACHE_FACTOR)
  return int(math.ceil(image_size * factor))


def to_rgb(
    image: Image.Image, background: Sequence[int] = (255, 255, 255)
) -> Image.Image:
  """Converts a PIL image of any mode to 8-bit RGB.

  Args:
    image: a loaded PIL image (L, LA, P, PA, RGBA, CMYK, I;16, I, F, 1, ...).
    background: RGB colour that transparent pixels are composited on.

  Returns:
    An RGB PIL image of the same size.
  """
  mode = image.mode
  if mode == 'RGB':
    return image
  if mode.startswith('I;16') or mode in ('I', 'F'):
    # 16-bit (and 32-bit int) images hold 0..65535; scale, rather than clip, to 8 bits.
    values = np.asarray(image, dtype=np.float64)
    if mode == 'F' and values.max(initial=0.0) <= 1.0:
      values = values * 255.0
    elif mode != 'F':
      values = values / 257.0
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, 'L').convert('RGB')
  has_alpha = (
      mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La')
      or (mode == 'P' and 'transparency' in image.info)
      or (mode in ('L', 'RGB') and 'transparency' in image.info)
  )
  if has_alpha:
    rgba = image.convert('RGBA')
    canvas = Image.new(
        'RGBA', rgba.size, tuple(int(c) for c in background) + (255,)
    )
    return Image.alpha_composite(canvas, rgba).convert('RGB')
  # CMYK (Adobe-inverted JPEGs are handled by PIL's JPEG plugin), YCbCr, L, 1, P.
  return image.convert('RGB')


def open_image(
    source: str | bytes | BinaryIO | np.ndarray | Image.Image,
) -> Image.Image:
  """Opens a path, encoded bytes, a file object, an array or a PIL image (not loaded)."""
  if isinstance(source, Image.Image):
    return source
  if isinstance(source, np.ndarray):
    return Image.fromarray(source)
  if isinstance(source, bytes):
    return Image.open(io.BytesIO(source))
  return Image.open(source)


def load_rgb(
    source: Any,
    *,
    min_size: int = 0,
    background: Sequence[int] = (255, 255, 255),
    draft_side: int = 0,
) -> Image.Image:
  """Decodes one image to upright RGB, or raises ``UnusableImageError``.

  Args:
    source: path, encoded bytes, file object, uint8 array or PIL image.
    min_size: images whose shorter side (before any resizing) is below this
      are rejected with reason 'too_small'.
    background: RGB colour that transparent pixels are composited on.
    draft_side: when > 0, JPEGs are decoded at a reduced scale that still keeps
      the shorter side >= draft_side (much faster for large photos).

  Returns:
    The decoded RGB PIL image, EXIF orientation applied (first frame of GIFs).

  Raises:
    UnusableImageError: unreadable, truncated, not an image, or too small.
  """
  name = (
      source
      if isinstance(source, (str, os.PathLike))
      else type(source).__name__
  )
  try:
    image = open_image(source)
    original_short = min(image.size)
    if min_size and original_short < min_size:
      raise UnusableImageError(
          'too_small',
          f'{name}: {image.size[0]}x{image.size[1]} is smaller than '
          f'min_size={min_size}',
      )
    if draft_side and image.format == 'JPEG' and image.mode in ('RGB', 'L'):
      image.draft(image.mode, (draft_side, draft_side))
    image.load()  # Raises on truncated or corrupt data.
    image = ImageOps.exif_transpose(image)
    return to_rgb(image, background)
  except UnusableImageError:
    raise
  except Image.UnidentifiedImageError as e:
    empty = (
        isinstance(name, str)
        and os.path.isfile(name)
        and not os.path.getsize(name)
    )
    reason, what = (
        ('unreadable', 'empty file') if empty else ('not_image', 'not an image')
    )
    raise UnusableImageError(reason, f'{name}: {what}') from e
  except (
      Exception
  ) as e:  # PIL raises many types (OSError, SyntaxError, ValueError...).
    raise UnusableImageError(
        'unreadable', f'{name}: {type(e).__name__}: {e}'
    ) from e


def crop_and_resize(image: Image.Image, side: int, crop: str) -> np.ndarray:
  """Crops an RGB image to a square (or not) and resizes it with antialiasing.

  Args:
    image: RGB PIL image.
    side: target side. For ``crop='random'`` the shorter side is resized to
      ``side`` keeping the aspect ratio (the random square crop happens later,
      per element); otherwise the result is ``side x side``.
    crop: 'center' (central square), 'random' (keep the aspect ratio), or
      'none'/'squash' (resize the whole image to a square).

  Returns:
    uint8 array [H, W, 3].
  """
  if crop not in CROPS:
    raise ValueError(f'data.crop={crop!r} is not one of {CROPS}')
  width, height = image.size
  if crop == 'center':
    short = min(width, height)
    left, top = (width - short) // 2, (height - short) // 2
    box = (left, top, left + short, top + short) if width != height else None
    size = (side, side)
  elif crop == 'random':
    box = None
    scale = side / min(width, height)
    size = (max(side, round(width * scale)), max(side, round(height * scale)))
  else:
    box = None
    size = (side, side)
  if size != (width, height) or box is not None:
    # PIL's bicubic filter widens its support when downscaling (antialiasing).
    image = image.resize(size, Image.Resampling.BICUBIC, box=box)
  return np.asarray(image, dtype=np.uint8)


# The 9 landmarks of a CAT data set '.cat' file, in file order.
CAT_LANDMARKS = (
    'left_eye',
    'right_eye',
    'mouth',
    'left_ear_1',
    'left_ear_2',
    'left_ear_3',
    'right_ear_1',
    'right_ear_2',
    'right_ear_3',
)
OUTSIDE_MODES = ('skip', 'edge', 'reflect')


def parse_cat_landmarks(text: str) -> np.ndarray:
  """Parses a '.cat' file ('9 x1 y1 ... x9 y9') into a float array [9, 2] of (x, y)."""
  values = text.split()
  if not values or values[0] != '9' or len(values) < 19:
    raise ValueError(f'expected "9" and 18 coordinates, got {text[:80]!r}')
  return np.array([float(v) for v in values[1:19]]).reshape(9, 2)


@dataclasses.dataclass(frozen=True)
class FaceSquare:
  """An upright square around a face, in photo coordinates.

  ``centre`` is the midpoint of the eyes, ``x_axis`` the unit vector from the
  viewer's left eye to the right eye, ``y_axis`` the unit vector pointing down
  the face, and the square spans ``u`` in [-side/2, side/2] and ``v`` in
  [-eye_height * side, (1 - eye_height) * side] along them.
  """

  centre: np.ndarray
  x_axis: np.ndarray
  y_axis: np.ndarray
  side: float
  eye_height: float

  def to_photo(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Face-square coordinates (pixels from the top-left corner) -> photo (x, y)."""
    u = np.asarray(u, np.float64) - self.side / 2
    v = np.asarray(v, np.float64) - self.eye_height * self.side
    return self.centre + u[..., None] * self.x_axis + v[..., None] * self.y_axis

  def corners(self) -> np.ndarray:
    return self.to_photo(
        np.array([0, self.side, 0, self.side]),
        np.array([0, 0, self.side, self.side]),
    )


def cat_face_square(
    landmarks: np.ndarray, *, margin: float = 1.0, eye_height: float = 0.4
) -> FaceSquare:
  """The square face crop of one cat: eyes level, width from the ear bases.

  Args:
    landmarks: [9, 2] (x, y) points in ``CAT_LANDMARKS`` order.
    margin: side of the square relative to the distance between the outer
      bases of the two ears.
    eye_height: height of the eyes' midpoint from the top, relative to the side.

  Returns:
    The ``FaceSquare``.
  """
  eyes = landmarks[:2]
  centre = eyes.mean(0)
  x_axis = eyes[1] - eyes[0]
  if x_axis[0] < 0:
    # Labels are the cat's left and right; either order levels the eyes.
    x_axis = -x_axis
  norm = np.linalg.norm(x_axis)
  if norm == 0:
    raise ValueError('both eyes are at the same point')
  x_axis = x_axis / norm
  y_axis = np.array([-x_axis[1], x_axis[0]])
  if np.dot(landmarks[2] - centre, y_axis) < 0:
    # An upside-down face: the mouth must be below the eyes.
    x_axis, y_axis = -x_axis, -y_axis
  ear_bases = landmarks[[3, 8]]
  u = (ear_bases - centre) @ x_axis
  side = margin * float(np.abs(u[1] - u[0]))
  if side <= 0:
    raise ValueError('the ear bases are at the same place')
  return FaceSquare(centre, x_axis, y_axis, side, eye_height)


def crop_square(
    image: Image.Image, square: FaceSquare, *, outside: str = 'skip'
) -> Image.Image | None:
  """Cuts ``square`` out of an RGB photo at its own resolution (rotated upright).

  Args:
    image: the RGB photo.
    square: the face square in photo coordinates.
    outside: what to do when the square leaves the photo: 'skip' (return
      None), or fill with 'edge' (replicated border) or 'reflect' pixels.

  Returns:
    A ``round(side) x round(side)`` RGB image, or None when skipped.
  """
  if outside not in OUTSIDE_MODES:
    raise ValueError(f'outside={outside!r} must be one of {OUTSIDE_MODES}')
  corners = square.corners()
  width, height = image.size
  overhang = max(
      0.0,
      -corners.min(),
      corners[:, 0].max() - width,
      corners[:, 1].max() - height,
  )
  pad = 0
  if overhang > 0:
    if outside == 'skip':
      return None
    pad = int(math.ceil(overhang)) + 2
    mode = 'edge' if outside == 'edge' else 'symmetric'
    pixels = np.asarray(image)
    if outside == 'reflect' and pad >= min(pixels.shape[:2]):
      mode = 'edge'  # A reflection cannot be wider than the photo.
    image = Image.fromarray(
        np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
    )
  side = max(1, int(round(square.side)))
  scale = square.side / side
  origin = square.to_photo(np.array(0.0), np.array(0.0)) + pad
  ax, ay = square.x_axis * scale, square.y_axis * scale
  # PIL's affine maps output (x, y) to input (a x + b y + c, d x + e y + f).
  coefficients = (ax[0], ay[0], origin[0], ax[1], ay[1], origin[1])
  return image.transform(
      (side, side),
      Image.Transform.AFFINE,
      coefficients,
      resample=Image.Resampling.BICUBIC,
  )
