"""Procedurally drawn cat faces: an offline data set for quickstarts and tests.

Each face has a head, two triangular ears with inner ears, eyes with slit
pupils and highlights, a nose, a mouth, often whiskers and tabby stripes, with
random fur, eye and background colours, size, position and a small head tilt.
Faces are drawn at twice the requested size with PIL and downsampled, which
antialiases the edges. Image ``i`` depends only on ``(seed, i)``.

For class-conditional training each face has a class, its coat colour group
(``CLASS_NAMES``; ``face_class``): read from the same random draws that paint
it, so labelling the set changes none of its images.
"""

import math

import numpy as np
from PIL import Image
from PIL import ImageDraw

# Fur colours (RGB): ginger, grey, black, white, brown, cream, silver, tortie-ish.
_FUR = np.array(
    [
        (214, 128, 56),
        (128, 128, 134),
        (34, 32, 36),
        (236, 234, 228),
        (120, 80, 50),
        (232, 206, 160),
        (180, 184, 190),
        (90, 60, 40),
    ]
)
_IRIS = np.array(
    [
        (90, 170, 60),
        (220, 190, 40),
        (80, 140, 210),
        (200, 120, 30),
        (150, 190, 90),
    ]
)
_SUPERSAMPLE = 2
# Coat colour classes: ginger, brown and tortie are 'ginger'; grey and silver
# 'grey'; white and cream 'white' (class frequencies 3/8, 2/8, 1/8, 2/8).
CLASS_NAMES = ('ginger', 'grey', 'black', 'white')
_FUR_CLASS = (0, 1, 2, 3, 0, 3, 1, 0)


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: int) -> tuple:
  noise = rng.integers(-amount, amount + 1, 3) if amount else (0, 0, 0)
  return tuple(min(255, max(0, int(c) + int(d))) for c, d in zip(colour, noise))


def _draw_face(rng: np.random.Generator, size: int) -> Image.Image:
  """Draws one face on a ``size x size`` canvas (already supersampled)."""
  background = _jitter(rng, rng.integers(0, 256, 3), 0)
  image = Image.new('RGB', (size, size), background)
  draw = ImageDraw.Draw(image)

  fur = _FUR[rng.integers(len(_FUR))].astype(int)
  fur_colour = _jitter(rng, fur, 18)
  dark = tuple(int(c * 0.55) for c in fur_colour)
  radius = size * rng.uniform(0.26, 0.36)
  rx, ry = radius * rng.uniform(1.0, 1.15), radius * rng.uniform(0.88, 1.0)
  cx = size / 2 + rng.uniform(-0.08, 0.08) * size
  cy = size / 2 + rng.uniform(-0.02, 0.1) * size

  # Ears: triangles whose base sits on the upper head outline.
  ear_angle = math.radians(rng.uniform(28, 42))
  ear_height = radius * rng.uniform(0.7, 1.05)
  ear_half_base = rng.uniform(0.32, 0.45)
  inner = _jitter(rng, np.array([230, 150, 160]), 15)
  for side in (-1, 1):
    base = []
    for da in (-ear_half_base, ear_half_base):
      a = ear_angle + da
      base.append((cx + side * rx * math.sin(a), cy - ry * math.cos(a)))
    tip = (
        cx + side * (rx * math.sin(ear_angle) + ear_height * 0.35),
        cy - ry * math.cos(ear_angle) - ear_height,
    )
    draw.polygon([base[0], tip, base[1]], fill=fur_colour)
    mid = ((base[0][0] + base[1][0]) / 2, (base[0][1] + base[1][1]) / 2)
    shrink = lambda p: (
        mid[0] + 0.6 * (p[0] - mid[0]),
        mid[1] + 0.6 * (p[1] - mid[1]),
    )
    draw.polygon([shrink(base[0]), shrink(tip), shrink(base[1])], fill=inner)

  draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fur_colour)

  if rng.random() < 0.5:  # Tabby stripes on the forehead.
    for k in (-1, 0, 1):
      x = cx + k * rx * 0.18
      draw.line(
          [(x, cy - ry * 0.92), (x, cy - ry * 0.55)],
          fill=dark,
          width=max(1, int(size * 0.02)),
      )

  # Eyes.
  eye_dx, eye_y = rx * rng.uniform(0.36, 0.46), cy - ry * rng.uniform(0.05, 0.2)
  eye_r = radius * rng.uniform(0.15, 0.22)
  iris = _jitter(rng, _IRIS[rng.integers(len(_IRIS))].astype(int), 20)
  pupil_w = eye_r * rng.uniform(0.2, 0.7)
  for side in (-1, 1):
    ex = cx + side * eye_dx
    draw.ellipse(
        (ex - eye_r, eye_y - eye_r * 0.85, ex + eye_r, eye_y + eye_r * 0.85),
        fill=iris,
        outline=(20, 20, 20),
        width=max(1, size // 96),
    )
    draw.ellipse(
        (ex - pupil_w, eye_y - eye_r * 0.8, ex + pupil_w, eye_y + eye_r * 0.8),
        fill=(10, 10, 12),
    )
    hl = eye_r * 0.22
    hx, hy = ex + eye_r * 0.3, eye_y - eye_r * 0.35
    draw.ellipse((hx - hl, hy - hl, hx + hl, hy + hl), fill=(250, 250, 250))

  # Nose and mouth.
  nose_y, nose_w = cy + ry * rng.uniform(0.18, 0.28), radius * rng.uniform(
      0.09, 0.14
  )
  nose = _jitter(rng, np.array([225, 120, 140]), 25)
  draw.polygon(
      [(cx - nose_w, nose_y), (cx + nose_w, nose_y), (cx, nose_y + nose_w)],
      fill=nose,
  )
  mouth_w = max(1, size // 80)
  mouth_y = nose_y + nose_w
  for side in (-1, 1):
    draw.arc(
        (
            cx + min(0, side) * nose_w * 1.6,
            mouth_y - nose_w * 0.8,
            cx + max(0, side) * nose_w * 1.6,
            mouth_y + nose_w * 0.8,
        ),
        0,
        180,
        fill=(30, 20, 20),
        width=mouth_w,
    )

  if rng.random() < 0.8:  # Whiskers.
    whisker = (245, 245, 240) if sum(fur_colour) < 300 else (40, 40, 40)
    for side in (-1, 1):
      for k in range(3):
        start = (cx + side * nose_w * 2.0, nose_y + nose_w * (0.3 + 0.4 * k))
        end = (
            cx + side * rx * rng.uniform(1.05, 1.3),
            nose_y + nose_w * (0.3 + 0.4 * k) + (k - 1) * radius * 0.18,
        )
        draw.line([start, end], fill=whisker, width=max(1, size // 128))

  tilt = rng.uniform(-12, 12)
  # Nearest is enough: the supersampled image is box-filtered afterwards.
  return image.rotate(
      tilt,
      resample=Image.Resampling.NEAREST,
      center=(cx, cy),
      fillcolor=background,
  )


def face_class(seed: int, index: int) -> int:
  """The coat colour class (index into ``CLASS_NAMES``) of face ``index``.

  Replays ``_draw_face``'s first two draws (background, fur colour) without
  drawing anything.
  """
  rng = np.random.default_rng((seed, index))
  rng.integers(0, 256, 3)  # The background colour.
  return _FUR_CLASS[int(rng.integers(len(_FUR)))]


def draw_cat_face(size: int, seed: int, index: int) -> np.ndarray:
  """Draws face number ``index`` of the set with ``seed``: uint8 [size, size, 3]."""
  rng = np.random.default_rng((seed, index))
  image = _draw_face(rng, size * _SUPERSAMPLE)
  image = image.resize((size, size), Image.Resampling.BOX)
  return np.asarray(image, dtype=np.uint8)


def draw_cat_faces(n: int, size: int, seed: int = 0) -> np.ndarray:
  """Draws ``n`` distinct cat faces.

  Args:
    n: number of images.
    size: side of the square images in pixels.
    seed: data set seed; image ``i`` depends only on ``(seed, i)``, so a prefix
      of a larger set equals the smaller set.

  Returns:
    uint8 array [n, size, size, 3].
  """
  if n < 0 or size < 1:
    raise ValueError(
        f'draw_cat_faces needs n >= 0 and size >= 1, got n={n}, size={size}'
    )
  images = np.empty((n, size, size, 3), np.uint8)
  for i in range(n):
    images[i] = draw_cat_face(size, seed, i)
  return images
