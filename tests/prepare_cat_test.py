"""Tests of the CAT data set preparation on synthetic photos with known landmarks."""

import math
import os
import zipfile

import numpy as np
from PIL import Image
from PIL import ImageDraw
import pytest

from catgan_jax import data
from catgan_jax.data import prepare_cat
from catgan_jax.data import preprocess
from configs import default

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)
# A face in its own frame (u right, v down, eyes' midpoint at 0): eyes 40 px
# apart, mouth 30 px below, outer ear bases 100 px apart -> a 100 px square.
FACE = np.array(
    [
        (-20, 0),
        (20, 0),
        (0, 30),  # eyes, mouth
        (-50, -20),
        (-40, -70),
        (-15, -35),  # left ear: base, tip, base
        (15, -35),
        (40, -70),
        (50, -20),
    ],
    float,
)  # right ear: base, tip, base


def _photo(
    folder,
    name,
    *,
    centre,
    angle_deg,
    scale=1.0,
    size=(240, 220),
    swap_eyes=False,
):
  """Draws a tilted face with coloured eyes and mouth and writes NAME.jpg(.cat)."""
  angle = math.radians(angle_deg)
  rotation = np.array(
      [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
  )
  points = FACE * scale @ rotation.T + np.array(centre, float)
  image = Image.new('RGB', size, (120, 110, 100))
  draw = ImageDraw.Draw(image)
  radius = 5 * scale
  for (x, y), colour in zip(points[:3], (RED, BLUE, GREEN)):
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
  path = os.path.join(folder, name + '.jpg')
  image.save(path, quality=98)
  if swap_eyes:
    points[[0, 1]] = points[[1, 0]]
  with open(path + '.cat', 'w') as f:
    f.write('9 ' + ' '.join(str(int(round(v))) for v in points.ravel()) + ' ')
  return points


def _blob_centre(image, colour):
  pixels = np.asarray(image).astype(int)
  mask = np.abs(pixels - np.array(colour)).sum(-1) < 150
  ys, xs = np.nonzero(mask)
  assert len(xs), f'no {colour} blob'
  return xs.mean() + 0.5, ys.mean() + 0.5


@pytest.mark.parametrize('angle, swap', [(0, False), (25, False), (-30, True)])
def test_face_square_levels_eyes_and_places_them(tmp_path, angle, swap):
  points = _photo(
      str(tmp_path), 'cat', centre=(120, 110), angle_deg=angle, swap_eyes=swap
  )
  square = preprocess.cat_face_square(points)
  assert square.side == pytest.approx(100, abs=2)
  photo = preprocess.load_rgb(str(tmp_path / 'cat.jpg'))
  face = preprocess.crop_square(photo, square)
  assert face.size == (100, 100)
  # Eyes level at 0.4 * 100 = 40 px from the top, 50 -/+ 20 px across; the mouth
  # 30 px below them, in the middle.
  # Swapped eye labels give the same picture (the red eye stays on the left).
  for colour, (x, y) in ((RED, (30, 40)), (BLUE, (70, 40)), (GREEN, (50, 70))):
    found = _blob_centre(face, colour)
    assert found == pytest.approx((x, y), abs=1.5), colour


def test_crop_outside_the_photo(tmp_path):
  points = _photo(str(tmp_path), 'edge', centre=(40, 110), angle_deg=0)
  square = preprocess.cat_face_square(points)
  photo = preprocess.load_rgb(str(tmp_path / 'edge.jpg'))
  assert preprocess.crop_square(photo, square, outside='skip') is None
  filled = np.asarray(preprocess.crop_square(photo, square, outside='edge'))
  assert filled.shape == (100, 100, 3)
  # The 10 px left of the photo are filled with the (grey) border, not black.
  assert filled[:, :8].mean() > 90


def test_prepare_writes_buckets_and_counts(tmp_path, capsys):
  raw = tmp_path / 'raw' / 'CAT_00'
  raw.mkdir(parents=True)
  _photo(
      str(raw),
      'big',
      centre=(300, 280),
      angle_deg=15,
      scale=2.8,
      size=(600, 560),
  )
  _photo(
      str(raw), 'medium', centre=(120, 110), angle_deg=-10, scale=1.4
  )  # 140 px.
  _photo(str(raw), 'small', centre=(120, 110), angle_deg=5, scale=0.5)  # 50 px.
  _photo(str(raw), 'edge', centre=(40, 110), angle_deg=0)
  (raw / 'broken.jpg.cat').write_text('7 1 2 3')
  # One more photo only inside a zip archive.
  zipped = tmp_path / 'zipsrc'
  zipped.mkdir()
  _photo(str(zipped), 'zipped', centre=(120, 110), angle_deg=8)
  with zipfile.ZipFile(tmp_path / 'raw' / 'CAT_DATASET_02.zip', 'w') as archive:
    for name in ('zipped.jpg', 'zipped.jpg.cat'):
      archive.write(zipped / name, 'CAT_05/' + name)
  out = tmp_path / 'faces'
  assert prepare_cat.main([str(tmp_path / 'raw'), str(out)]) == 0
  printed = capsys.readouterr().out
  assert (
      '6 annotated photos: 1 bad_landmarks, 3 ok, 1 outside, 1 too_small'
      in printed
  )
  assert '>= 64px: 3 faces' in printed and '>= 128px: 2 faces' in printed
  assert '>= 256px: 1 faces' in printed
  assert sorted(os.listdir(out / '64')) == [
      'CAT_00_big.jpg',
      'CAT_00_medium.jpg',
      'CAT_05_zipped.jpg',
  ]
  assert sorted(os.listdir(out / '256')) == ['CAT_00_big.jpg']
  big = Image.open(out / '256' / 'CAT_00_big.jpg')
  assert big.size == (256, 256)
  # Eyes level at 0.4 * 256 = 102 px, 128 -/+ 51 px across.
  assert _blob_centre(big, RED) == pytest.approx((128 - 51.2, 102.4), abs=3)
  assert _blob_centre(big, BLUE) == pytest.approx((128 + 51.2, 102.4), abs=3)

  # The cat_dataset source picks the smallest bucket that fits data.image_size.
  config = default.get_config()
  config.data.update(source='cat_dataset', dir=str(out), image_size=100)
  batch = next(data.create_input_iter(config, local_batch_size=2))
  assert batch.shape == (2, 100, 100, 3)
  config.data.image_size = 512
  with pytest.raises(
      ValueError,
      match=r'no face bucket of at least data.image_size=512 '
      r'\(found \[64, 128, 256\]\)',
  ):
    data.create_input_iter(config, local_batch_size=2)


def test_no_annotations_is_an_error(tmp_path, capsys):
  (tmp_path / 'empty').mkdir()
  assert prepare_cat.main([str(tmp_path / 'empty'), str(tmp_path / 'out')]) == 2
  assert 'no .cat landmark files' in capsys.readouterr().err


def test_parse_cat_landmarks():
  points = preprocess.parse_cat_landmarks(
      '9 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 '
  )
  assert points.shape == (9, 2) and tuple(points[2]) == (5, 6)
  with pytest.raises(ValueError, match='expected "9"'):
    preprocess.parse_cat_landmarks('3 1 2')
