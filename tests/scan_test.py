"""Tests of the folder scan on a folder of deliberately broken files, and training on it."""

import os
import shutil

import numpy as np
from PIL import Image
import pytest

from catgan_jax import data
from catgan_jax.data import preprocess
from catgan_jax.data import scan
from configs import default


def _pattern(seed, size=48, mode='RGB'):
  """A smooth random pattern (distinct perceptual hashes, compresses well)."""
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (4, 4, 3), np.uint8)
  image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
  return image.convert(mode) if mode != 'RGB' else image


def _dirty_folder(root):
  """Every kind of problem the scan knows, next to good images in every mode.

  Returns the folder and the expected category of each file.
  """
  folder = os.path.join(root, 'dirty')
  os.makedirs(os.path.join(folder, 'nested'))
  expected = {}

  def save(name, image, category, **kwargs):
    image.save(os.path.join(folder, name), **kwargs)
    expected[name] = category

  save('a_rgb.jpg', _pattern(0), 'good', quality=95)
  save('b_rgb.png', _pattern(1), 'good')
  save('c_gray.png', _pattern(2, mode='L'), 'good')
  save('d_rgba.png', _pattern(3, mode='RGBA'), 'good')
  save('e_cmyk.jpg', _pattern(4, mode='CMYK'), 'good', quality=95)
  sixteen = np.asarray(_pattern(5, mode='L'), np.uint16) * 257
  save('f_16bit.png', Image.fromarray(sixteen), 'good')
  save('nested/g_palette.gif', _pattern(6, mode='P'), 'good')
  save('tiny.png', _pattern(7, size=20), 'too_small')
  # Exact duplicate (same bytes) and near duplicate (recompressed and brightened).
  shutil.copy(
      os.path.join(folder, 'a_rgb.jpg'), os.path.join(folder, 'z_copy.jpg')
  )
  expected['z_copy.jpg'] = 'duplicate'
  brighter = Image.fromarray(
      np.minimum(np.asarray(_pattern(1), np.int32) + 6, 255).astype(np.uint8)
  )
  save('z_near.jpg', brighter, 'near_duplicate', quality=70)
  # Broken files.
  _pattern(8).save(os.path.join(folder, 'truncated.jpg'), quality=95)
  with open(os.path.join(folder, 'truncated.jpg'), 'rb') as f:
    head = f.read()
  with open(os.path.join(folder, 'truncated.jpg'), 'wb') as f:
    f.write(head[: len(head) // 2])
  expected['truncated.jpg'] = 'unreadable'
  open(os.path.join(folder, 'empty.jpg'), 'wb').close()
  expected['empty.jpg'] = 'unreadable'
  with open(os.path.join(folder, 'text.png'), 'w') as f:
    f.write('this is not a PNG\n')
  expected['text.png'] = 'not_image'
  with open(os.path.join(folder, 'notes.txt'), 'w') as f:
    f.write('not an image extension: ignored\n')
  return folder, expected


def test_scan_reports_each_file_by_category(tmp_path):
  folder, expected = _dirty_folder(str(tmp_path))
  report = scan.scan_folder(folder, min_size=32)
  found = {r.path: r.category for r in report.files}
  assert found == expected
  assert report.ignored == ['notes.txt']
  details = {r.path: r.detail for r in report.files}
  assert details['z_copy.jpg'] == 'same bytes as a_rgb.jpg'
  assert details['z_near.jpg'] == 'looks like b_rgb.png'
  assert details['empty.jpg'] == 'empty file'
  assert 'truncated' in details['truncated.jpg']
  assert details['tiny.png'] == '20x20 is smaller than min_size=32'
  text = scan.format_report(report)
  assert 'converted to RGB: CMYK 1, I;16 1, L 1, P 1, RGBA 1' in text
  # Without the near-duplicate check the recompressed copy is good.
  relaxed = scan.scan_folder(folder, min_size=16, near_threshold=-1)
  assert {r.path: r.category for r in relaxed.files}['z_near.jpg'] == 'good'
  assert {r.path: r.category for r in relaxed.files}['tiny.png'] == 'good'


def test_scan_command_writes_manifest_and_training_uses_only_good_images(
    tmp_path, capsys
):
  folder, expected = _dirty_folder(str(tmp_path))
  manifest = str(tmp_path / 'clean.txt')
  assert (
      scan.main(
          [
              folder,
              '--manifest',
              manifest,
              '--report',
              str(tmp_path / 'report.json'),
          ]
      )
      == 0
  )
  out = capsys.readouterr().out
  assert 'unreadable           2' in out and 'duplicate            1' in out
  good = sorted(
      name for name, category in expected.items() if category == 'good'
  )
  listed = [line.strip() for line in open(manifest) if not line.startswith('#')]
  assert listed == good

  def train_images(**fields):
    config = default.get_config()
    config.data.update(
        source='folder', dir=folder, image_size=16, flip=False, **fields
    )
    batches = data.create_input_iter(config, local_batch_size=4)
    return np.concatenate([next(batches) for _ in range(6)])  # 24 = 2+ epochs.

  def expected_images(names):
    return {
        preprocess.crop_and_resize(
            preprocess.load_rgb(os.path.join(folder, name), draft_side=16),
            16,
            'center',
        ).tobytes()
        for name in names
    }

  # With the manifest: exactly the good images.
  seen = {image.tobytes() for image in train_images(manifest=manifest)}
  assert seen == expected_images(good)
  # Without it: the broken and small files are skipped, nothing crashes.
  decodable = [
      n
      for n, c in expected.items()
      if c in ('good', 'duplicate', 'near_duplicate')
  ]
  seen = {image.tobytes() for image in train_images()}
  assert seen == expected_images(decodable)


def test_hamming_pairs():
  # 0b0000, 0b0111 (3 bits from the first), 0b1111 (1 bit from the second).
  assert scan.hamming_pairs([0, 7, 15], threshold=1) == [(2, 1)]
  assert scan.hamming_pairs([0, 7, 15], threshold=3) == [(1, 0), (2, 1)]
  assert scan.hamming_pairs([0, 7, 15], threshold=4) == [(1, 0), (2, 0), (2, 1)]


def test_perceptual_hash_is_robust_to_resizing_not_to_content():
  image = _pattern(11, size=64)
  same = scan.perceptual_hash(image.resize((40, 40)))
  other = scan.perceptual_hash(_pattern(12, size=64))
  distance = lambda a, b: bin(a ^ b).count('1')
  assert distance(scan.perceptual_hash(image), same) <= 4
  assert distance(scan.perceptual_hash(image), other) > 12


def test_missing_folder_is_an_error(tmp_path, capsys):
  assert scan.main([str(tmp_path / 'nope')]) == 2
  assert 'does not exist' in capsys.readouterr().err


def test_cat_face_check(tmp_path):
  pytest.importorskip('cv2')
  folder = str(tmp_path / 'faces')
  os.makedirs(folder)
  cat_faces = os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      '..',
      'shared',
      'data',
      'cat_faces_64',
  )
  if os.path.isdir(cat_faces):
    shutil.copy(
        os.path.join(cat_faces, '1.jpg'), os.path.join(folder, 'cat.jpg')
    )
  _pattern(13, size=64).save(os.path.join(folder, 'blob.png'))
  report = scan.scan_folder(folder, cat_faces=True)
  found = {r.path: r.category for r in report.files}
  assert found['blob.png'] == 'no_cat_face'
  if 'cat.jpg' in found:
    assert found['cat.jpg'] == 'good'
