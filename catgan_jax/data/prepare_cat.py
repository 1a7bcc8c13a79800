"""Turns the CAT data set (photos + '.cat' landmarks) into folders of aligned cat faces.

Usage::

  python -m catgan_jax.data.prepare_cat INPUT OUTPUT [--sizes 64,128,256]
      [--margin 1.0] [--eye_height 0.4] [--outside skip|edge|reflect] [--download]

INPUT holds the CAT data set (Zhang, Sun and Tang, 2008: ~10k photos, each
with a ``NAME.jpg.cat`` file of 9 landmarks), either extracted (``CAT_00`` ...
``CAT_06`` folders, searched recursively) or as the ``CAT_DATASET_0*.zip``
archives; ``--download`` first fetches the archives from the Internet Archive.
Each photo is rotated so that the eyes are level, and a square is cut with the
distance between the outer ear bases as its width (times ``--margin``) and the
eyes at ``--eye_height`` of it from the top. A face whose square is at least N
pixels wide is resized (antialiased) to N x N and written to ``OUTPUT/N/`` for
every N in ``--sizes``; the count of each bucket is printed. Train on a bucket
with ``--config.data.source=cat_dataset --config.data.dir=OUTPUT`` (the bucket
matching ``data.image_size`` is picked) or ``source=folder`` on ``OUTPUT/N``.
"""

import collections
import concurrent.futures
import dataclasses
import json
import os
import sys
import threading
import urllib.request
import zipfile
from typing import Callable, Sequence

from PIL import Image
import tqdm

from catgan_jax import cli
from catgan_jax import workdir as workdir_lib
from catgan_jax.data import preprocess

# The Internet Archive's copy of the data set, and the one annotation file that
# the original archive ships broken.
DOWNLOADS = (
    'https://archive.org/download/CAT_DATASET/CAT_DATASET_01.zip',
    'https://archive.org/download/CAT_DATASET/CAT_DATASET_02.zip',
)
_FIXED_ANNOTATION = (
    'https://archive.org/download/CAT_DATASET/00000003_015.jpg.cat',
    'CAT_00/00000003_015.jpg.cat',
)
_JPEG_QUALITY = 95


@dataclasses.dataclass(frozen=True)
class Example:
  """One annotated photo: a name and functions reading its bytes and landmarks."""

  name: str
  read_image: Callable[[], bytes]
  read_landmarks: Callable[[], str]


def _folder_examples(folder: str) -> list[Example]:
  examples = []
  for root, _, files in os.walk(folder):
    for name in files:
      if name.endswith('.cat'):
        cat_path = os.path.join(root, name)
        image_path = cat_path[: -len('.cat')]
        examples.append(
            Example(
                os.path.relpath(image_path, folder),
                lambda p=image_path: open(p, 'rb').read(),
                lambda p=cat_path: open(p).read(),
            )
        )
  return examples


def _zip_examples(path: str) -> list[Example]:
  archive = zipfile.ZipFile(path)
  lock = threading.Lock()  # A ZipFile is not safe for concurrent reads.

  def read(member):
    with lock:
      return archive.read(member)

  names = set(archive.namelist())
  return [
      Example(
          member[: -len('.cat')],
          lambda m=member[: -len('.cat')]: read(m),
          lambda m=member: read(m).decode('ascii', 'replace'),
      )
      for member in sorted(names)
      if member.endswith('.cat')
  ]


def find_examples(input_dir: str) -> list[Example]:
  """Annotated photos in extracted folders and in zip archives under ``input_dir``."""
  by_name = {}
  for example in _folder_examples(input_dir):
    by_name[example.name] = example
  for root, _, files in os.walk(input_dir):
    for name in sorted(files):
      if name.lower().endswith('.zip'):
        for example in _zip_examples(os.path.join(root, name)):
          by_name.setdefault(example.name, example)  # Extracted files win.
  return [by_name[name] for name in sorted(by_name)]


def download(input_dir: str) -> None:
  """Fetches the archives (and the corrected annotation) into ``input_dir``."""
  os.makedirs(input_dir, exist_ok=True)
  for url in DOWNLOADS:
    target = os.path.join(input_dir, os.path.basename(url))
    if not os.path.exists(target):
      print(f'Downloading {url} ...', flush=True)
      urllib.request.urlretrieve(url, target + '.part')
      os.replace(target + '.part', target)
  url, member = _FIXED_ANNOTATION
  target = os.path.join(input_dir, member)
  if not os.path.exists(target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    urllib.request.urlretrieve(url, target)


def _output_name(name: str) -> str:
  stem = os.path.splitext(name)[0]
  return stem.replace('/', '_').replace(os.sep, '_') + '.jpg'


def process(
    example: Example,
    output_dir: str,
    *,
    sizes: Sequence[int],
    margin: float,
    eye_height: float,
    outside: str,
) -> tuple[str, list[int]]:
  """Crops one face and writes it to every bucket it is large enough for.

  Returns:
    (status, buckets written): status is 'ok', 'bad_landmarks', 'unreadable',
    'outside' (the square leaves the photo) or 'too_small'.
  """
  try:
    landmarks = preprocess.parse_cat_landmarks(example.read_landmarks())
    square = preprocess.cat_face_square(
        landmarks, margin=margin, eye_height=eye_height
    )
  except (ValueError, OSError):
    return 'bad_landmarks', []
  if square.side < min(sizes):
    return 'too_small', []
  try:
    photo = preprocess.load_rgb(example.read_image())
  except (preprocess.UnusableImageError, OSError, KeyError):
    return 'unreadable', []
  face = preprocess.crop_square(photo, square, outside=outside)
  if face is None:
    return 'outside', []
  written = []
  for size in sizes:
    if face.size[0] >= size:
      # Buckets are created by their first face: a run that finds none
      # leaves the output folder as it was.
      os.makedirs(os.path.join(output_dir, str(size)), exist_ok=True)
      resized = face.resize((size, size), Image.Resampling.LANCZOS)
      resized.save(
          os.path.join(output_dir, str(size), _output_name(example.name)),
          quality=_JPEG_QUALITY,
      )
      written.append(size)
  return 'ok', written


def prepare(
    input_dir: str,
    output_dir: str,
    *,
    sizes: Sequence[int] = (64, 128, 256),
    margin: float = 1.0,
    eye_height: float = 0.4,
    outside: str = 'skip',
    workers: int = 0,
) -> dict[str, dict[str, int]]:
  """Writes the face buckets; returns {'buckets': {size: n}, 'status': {status: n}}."""
  examples = find_examples(input_dir)
  if not examples:
    raise ValueError(
        f'{input_dir!r}: no .cat landmark files (in folders or .zip archives)'
    )
  sizes = sorted(sizes)
  if not sizes or min(sizes) < 1:
    raise ValueError(f'--sizes={sizes} must be positive integers')
  workers = workers or (os.cpu_count() or 1) + 2

  def run(example):
    return process(
        example,
        output_dir,
        sizes=sizes,
        margin=margin,
        eye_height=eye_height,
        outside=outside,
    )

  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    results = list(
        tqdm.tqdm(
            pool.map(run, examples),
            total=len(examples),
            unit='photo',
            desc='prepare_cat',
            disable=None,
        )
    )
  buckets = collections.Counter(
      size for _, written in results for size in written
  )
  status = collections.Counter(status for status, _ in results)
  if not buckets:
    bad = [
        f'{example.name}.cat'
        for example, (s, _) in zip(examples, results)
        if s == 'bad_landmarks'
    ][:3]
    named = (
        f'; malformed landmark files include {", ".join(bad)}' if bad else ''
    )
    raise ValueError(
        f'{input_dir!r}: no face could be prepared from '
        f'{len(examples)} annotated photos '
        f'({", ".join(f"{n} {k}" for k, n in sorted(status.items()))})'
        f'{named}'
    )
  summary = {
      'photos': len(examples),
      'buckets': {str(size): buckets[size] for size in sizes},
      'status': dict(sorted(status.items())),
  }
  with open(os.path.join(output_dir, 'prepare_cat.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return summary


def main(argv: Sequence[str] | None = None) -> int:
  parser = cli.ArgumentParser(
      prog='python -m catgan_jax.data.prepare_cat',
      description='Align and crop the CAT data set faces into size buckets.',
  )
  parser.add_argument(
      'input', help='folder with the extracted CAT_0* folders or zips'
  )
  parser.add_argument(
      'output', help='folder that receives one sub-folder per size'
  )
  parser.add_argument('--sizes', default='64,128,256')
  parser.add_argument(
      '--margin',
      type=float,
      default=1.0,
      help='face width relative to the distance between the ear bases',
  )
  parser.add_argument(
      '--eye_height',
      type=float,
      default=0.4,
      help='height of the eyes from the top, relative to the face',
  )
  parser.add_argument(
      '--outside',
      choices=preprocess.OUTSIDE_MODES,
      default='skip',
      help='faces whose square leaves the photo: skip, or fill',
  )
  parser.add_argument(
      '--download',
      action='store_true',
      help='first download the archives into INPUT',
  )
  args = parser.parse_args(argv)
  try:
    sizes = [int(size) for size in args.sizes.split(',') if size]
  except ValueError:
    cli.fail(f'--sizes={args.sizes!r} must be comma-separated integers')
  outputs = [workdir_lib.Output(args.output, 'dir', 'OUTPUT')]
  if args.download:
    outputs.append(workdir_lib.Output(args.input, 'dir', 'INPUT'))
  try:
    workdir_lib.check_writable(outputs)
  except cli.UserError as e:
    return cli.report(str(e))
  if args.download:
    download(args.input)
  try:
    summary = prepare(
        args.input,
        args.output,
        sizes=sizes,
        margin=args.margin,
        eye_height=args.eye_height,
        outside=args.outside,
    )
  except ValueError as e:
    return cli.report(str(e))
  print(
      f'{summary["photos"]} annotated photos: '
      + ', '.join(
          f'{count} {status}' for status, count in summary['status'].items()
      )
  )
  for size, count in summary['buckets'].items():
    print(f'  >= {size}px: {count} faces in {os.path.join(args.output, size)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
