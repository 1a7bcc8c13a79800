"""Scans a folder of images for problems and writes a clean manifest.

Usage::

  python -m catgan_jax.data.scan FOLDER [--manifest OUT] [--min_size N]
      [--near_threshold BITS] [--cat_faces] [--report OUT.json]

Every file with an image extension is put in the first category that applies:
``not_image`` (no image format recognised), ``unreadable`` (empty, truncated
or corrupt), ``too_small`` (shorter side below ``--min_size``), ``duplicate``
(same bytes as an earlier file), ``near_duplicate`` (perceptual hash within
``--near_threshold`` bits of an earlier kept image), ``no_cat_face`` (with
``--cat_faces``: OpenCV's cat-face Haar cascades find no face), or ``good``.
Files are visited in sorted order, so the first of a group of duplicates is
kept. The manifest lists the good files (relative to FOLDER), one a line; train
on it with ``--config.data.manifest=OUT``.
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import sys
import threading
from typing import Sequence

import numpy as np
from PIL import Image
import scipy.fft
import tqdm

from catgan_jax import cli
from catgan_jax import workdir as workdir_lib
from catgan_jax.data import preprocess
from catgan_jax.data import sources

GOOD = 'good'
CATEGORIES = (
    'not_image',
    'unreadable',
    'too_small',
    'duplicate',
    'near_duplicate',
    'no_cat_face',
)
_HASH_SIDE = (
    32  # The perceptual hash keeps the 8x8 lowest frequencies of a 32x32 DCT.
)
_CAT_CASCADES = (
    'haarcascade_frontalcatface_extended.xml',
    'haarcascade_frontalcatface.xml',
)
_DETECT_MAX_SIDE = 256


@dataclasses.dataclass
class FileReport:
  """What the scan found about one file (``path`` is relative to the folder)."""

  path: str
  category: str = GOOD
  detail: str = ''
  mode: str = ''
  size: tuple[int, int] = (0, 0)
  sha1: str = ''
  phash: int = 0


@dataclasses.dataclass
class ScanReport:
  """The result of ``scan_folder``."""

  folder: str
  files: list[FileReport]
  ignored: list[str]  # Files without an image extension.

  def by_category(self) -> dict[str, list[FileReport]]:
    groups = {name: [] for name in (GOOD,) + CATEGORIES}
    for report in self.files:
      groups[report.category].append(report)
    return groups

  def good_paths(self) -> list[str]:
    return [report.path for report in self.files if report.category == GOOD]


def perceptual_hash(image: Image.Image) -> int:
  """64-bit DCT hash: signs of the 8x8 lowest frequencies against their median.

  Resizing, recompression and small colour changes flip few bits; different
  images differ in about half of them.
  """
  gray = image.convert('L').resize(
      (_HASH_SIDE, _HASH_SIDE), Image.Resampling.BOX
  )
  coefficients = scipy.fft.dctn(np.asarray(gray, np.float64), norm='ortho')[
      :8, :8
  ]
  coefficients = coefficients.ravel()
  bits = coefficients > np.median(
      coefficients[1:]
  )  # The DC term would skew the median.
  return int.from_bytes(np.packbits(bits).tobytes(), 'big')


def hamming_pairs(
    hashes: Sequence[int], threshold: int, chunk: int = 1024
) -> list[tuple[int, int]]:
  """All pairs ``(i, j)``, ``j < i``, whose hashes differ in at most ``threshold`` bits."""
  values = np.array(hashes, dtype=np.uint64)
  pairs = []
  for start in range(0, len(values), chunk):
    block = values[start : start + chunk, None] ^ values[None, :]
    rows, cols = np.nonzero(np.bitwise_count(block) <= threshold)
    rows = rows + start
    below = cols < rows
    pairs.extend(zip(rows[below].tolist(), cols[below].tolist()))
  return sorted(pairs)


def _inspect(folder: str, path: str, min_size: int) -> FileReport:
  """Reads, hashes and decodes one file."""
  full = os.path.join(folder, path)
  report = FileReport(path)
  with open(full, 'rb') as f:
    report.sha1 = hashlib.sha1(f.read()).hexdigest()
  try:
    with Image.open(full) as header:
      report.mode, report.size = header.mode, header.size
  except Exception:  # pylint: disable=broad-except
    pass  # load_rgb below categorises the failure.
  try:
    image = preprocess.load_rgb(full, min_size=min_size)
  except preprocess.UnusableImageError as e:
    report.category, report.detail = e.reason, str(e).removeprefix(full + ': ')
    return report
  report.phash = perceptual_hash(image)
  return report


def _mark_duplicates(reports: list[FileReport], near_threshold: int) -> None:
  """Marks exact duplicates (same bytes), then near duplicates of kept images."""
  first_with_hash = {}
  for report in reports:
    if report.category != GOOD:
      continue
    if report.sha1 in first_with_hash:
      report.category = 'duplicate'
      report.detail = f'same bytes as {first_with_hash[report.sha1]}'
    else:
      first_with_hash[report.sha1] = report.path
  if near_threshold < 0:
    return
  candidates = [report for report in reports if report.category == GOOD]
  neighbours = collections.defaultdict(list)
  for i, j in hamming_pairs(
      [report.phash for report in candidates], near_threshold
  ):
    neighbours[i].append(j)
  for i, report in enumerate(candidates):
    kept = [j for j in neighbours[i] if candidates[j].category == GOOD]
    if kept:
      report.category = 'near_duplicate'
      report.detail = f'looks like {candidates[kept[0]].path}'


def cat_face_detector():
  """Returns ``rgb array -> bool`` that runs OpenCV's two cat-face Haar cascades."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        'the cat-face check needs opencv-python-headless<5 '
        '(4.x wheels ship the cat-face Haar cascades)'
    ) from e
  cascades = []
  for name in _CAT_CASCADES:
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
    if cascade.empty():
      raise ValueError(
          f'OpenCV {cv2.__version__} has no usable {name} (use opencv<5)'
      )
    cascades.append(cascade)

  def has_cat_face(rgb: np.ndarray) -> bool:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = _DETECT_MAX_SIDE / max(gray.shape)
    if scale < 1:
      gray = cv2.resize(
          gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
      )
    # Tight face crops fill the frame; a replicated border lets the detector's
    # window see the whole face (90% of 64px cat faces found versus 83% without).
    pad = gray.shape[0] // 4
    gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    gray = cv2.equalizeHist(gray)
    return any(
        len(
            cascade.detectMultiScale(
                gray, scaleFactor=1.05, minNeighbors=3, minSize=(24, 24)
            )
        )
        for cascade in cascades
    )

  return has_cat_face


def _mark_no_cat_face(
    folder: str, reports: list[FileReport], workers: int
) -> None:
  # A first `import cv2` in several threads at once can see a half-made
  # module (no cv2.data): the main thread imports it (and checks the
  # cascades) before any worker starts.
  cat_face_detector()
  # A cascade classifier is not safe to share between threads (results vary).
  local = threading.local()

  def check(report):
    if not hasattr(local, 'has_cat_face'):
      local.has_cat_face = cat_face_detector()
    image = preprocess.load_rgb(os.path.join(folder, report.path))
    return local.has_cat_face(np.asarray(image))

  good = [report for report in reports if report.category == GOOD]
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    found = list(pool.map(check, good))
  for report, face in zip(good, found):
    if not face:
      report.category, report.detail = 'no_cat_face', 'no cat face detected'


def scan_folder(
    folder: str,
    *,
    min_size: int = 32,
    near_threshold: int = 4,
    cat_faces: bool = False,
    workers: int = 0,
) -> ScanReport:
  """Categorises every image file under ``folder`` (recursive).

  Args:
    folder: the folder to scan.
    min_size: images whose shorter side is below this are 'too_small'.
    near_threshold: perceptual-hash distance (bits of 64) up to which two
      images are near duplicates; negative disables the check.
    cat_faces: also mark images in which no cat face is detected.
    workers: decoding threads (0 = number of CPUs + 2).

  Returns:
    A ``ScanReport`` with one ``FileReport`` per image file, in sorted order.
  """
  if not os.path.isdir(folder):
    raise ValueError(f'{folder!r} does not exist or is not a directory')
  if cat_faces:
    cat_face_detector()  # OpenCV and its cascades, before any work.
  workers = workers or (os.cpu_count() or 1) + 2
  paths = [os.path.relpath(p, folder) for p in sources.list_image_files(folder)]
  ignored = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = [d for d in dirs if not d.startswith('.')]
    ignored += [
        os.path.relpath(os.path.join(root, name), folder)
        for name in files
        if not name.lower().endswith(preprocess.IMAGE_EXTENSIONS)
    ]
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    reports = list(
        tqdm.tqdm(
            pool.map(lambda p: _inspect(folder, p, min_size), paths),
            total=len(paths),
            unit='img',
            desc='scan',
            disable=None,
        )
    )
  if not reports:
    raise ValueError(
        f'{folder!r} holds no image files ({len(ignored)} other files; image '
        f'extensions: {", ".join(preprocess.IMAGE_EXTENSIONS)})'
    )
  _mark_duplicates(reports, near_threshold)
  if cat_faces:
    _mark_no_cat_face(folder, reports, workers)
  return ScanReport(folder=folder, files=reports, ignored=sorted(ignored))


def write_manifest(report: ScanReport, path: str) -> None:
  """Writes the good files, relative to the scanned folder, one a line."""
  with open(path, 'w') as f:
    f.write(
        f'# Clean images of {os.path.abspath(report.folder)} '
        '(written by catgan_jax.data.scan); paths are relative to it.\n'
    )
    for good in report.good_paths():
      f.write(good + '\n')


def format_report(report: ScanReport, max_listed: int = 10) -> str:
  """A human-readable summary: counts per category with example files."""
  groups = report.by_category()
  lines = [
      f'Scanned {report.folder}: {len(report.files)} image files'
      f' ({len(report.ignored)} other files ignored).'
  ]
  for name, members in groups.items():
    lines.append(f'  {name:<15}{len(members):>7}')
    if name != GOOD:
      for member in members[:max_listed]:
        lines.append(f'      {member.path}: {member.detail}')
      if len(members) > max_listed:
        lines.append(f'      ... and {len(members) - max_listed} more')
  modes = collections.Counter(
      r.mode for r in report.files if r.category == GOOD and r.mode != 'RGB'
  )
  if modes:
    lines.append(
        '  converted to RGB: '
        + ', '.join(f'{mode} {count}' for mode, count in sorted(modes.items()))
    )
  return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  parser = cli.ArgumentParser(
      prog='python -m catgan_jax.data.scan',
      description='Report broken, small, duplicate and non-cat images; write a manifest.',
  )
  parser.add_argument('folder')
  parser.add_argument(
      '--manifest', default='', help='write the good files here'
  )
  parser.add_argument(
      '--report', default='', help="write every file's result as JSON"
  )
  parser.add_argument('--min_size', type=int, default=32)
  parser.add_argument(
      '--near_threshold',
      type=int,
      default=4,
      help='max perceptual-hash distance (of 64 bits); -1 = off',
  )
  parser.add_argument(
      '--cat_faces',
      action='store_true',
      help='mark images where no cat face is detected (OpenCV)',
  )
  args = parser.parse_args(argv)
  try:
    workdir_lib.check_writable(
        [
            workdir_lib.Output(path, 'file', f'--{name}')
            for name, path in (
                ('manifest', args.manifest),
                ('report', args.report),
            )
            if path
        ]
    )
  except cli.UserError as e:
    return cli.report(str(e))
  try:
    report = scan_folder(
        args.folder,
        min_size=args.min_size,
        near_threshold=args.near_threshold,
        cat_faces=args.cat_faces,
    )
  except (ValueError, ImportError) as e:
    return cli.report(str(e))
  print(format_report(report))
  if args.manifest:
    write_manifest(report, args.manifest)
    print(f'Wrote {args.manifest} ({len(report.good_paths())} images).')
  if args.report:
    with open(args.report, 'w') as f:
      json.dump(
          {
              'folder': report.folder,
              'ignored': report.ignored,
              'files': [dataclasses.asdict(r) for r in report.files],
          },
          f,
          indent=1,
      )
    print(f'Wrote {args.report}.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
