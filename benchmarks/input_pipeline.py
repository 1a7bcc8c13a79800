"""Images per second delivered by the input pipeline (folder source).

    .venv/bin/python benchmarks/input_pipeline.py \\
        --dir /path/to/cat_faces_64 --out benchmarks/results/input_pipeline.json

Measures ``catgan_jax.data.create_input_iter`` on a folder of images at 64 px,
batch 64, in three settings: decoded images cached in memory (the default),
cached with random crops + random resized crops (the per-element augmentation
path), and decoding every element from disk (``data.cache=False``). For each:

  * ``startup_s``: building the pipeline and the first batch (for the cached
    settings this includes decoding every image once);
  * ``images_per_s``: steady state over ``--batches`` batches after the first.

The pipeline should deliver several times what the train step consumes: pass
the train step's images/s with ``--train_images_per_s`` or ``--step_json``
(the output of ``benchmarks/step_throughput.py``) to get the ratio. One JSON
object per setting is printed; ``--out`` writes them all, with the machine.
"""

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from catgan_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from catgan_jax import data  # pylint: disable=g-import-not-at-top,wrong-import-position
from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position

cli.configure()

SETTINGS = {
    'cached': {},
    'cached_random_resized_crop': {'crop': 'random', 'rrc_min_scale': 0.6},
    'uncached': {'cache': False},
}


def measure(
    folder: str, image_size: int, batch: int, batches: int, **data_fields: Any
) -> dict[str, Any]:
  """Startup time and steady-state images/s of one pipeline setting."""
  config = default.get_config()
  config.data.update(
      source='folder', dir=folder, image_size=image_size, **data_fields
  )
  start = time.perf_counter()
  iterator = data.create_input_iter(config, local_batch_size=batch)
  next(iterator)
  startup = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  elapsed = time.perf_counter() - start
  return {
      'startup_s': round(startup, 2),
      'images_per_s': round(batch * batches / elapsed, 1),
      'batches': batches,
  }


def _find_step_speed(record: Any, batch: int) -> float | None:
  """catgan_jax images/s at ``batch`` anywhere in a step_throughput JSON."""
  if isinstance(record, dict):
    if record.get('system') == 'catgan_jax' and record.get('batch') == batch:
      return float(record['images_per_s'])
    values = record.values()
  elif isinstance(record, list):
    values = record
  else:
    return None
  for value in values:
    found = _find_step_speed(value, batch)
    if found is not None:
      return found
  return None


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument(
      '--dir', required=True, help='a folder of images, e.g. 64x64 faces'
  )
  parser.add_argument('--image_size', type=int, default=64)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--batches', type=int, default=200)
  parser.add_argument('--settings', default=','.join(SETTINGS))
  parser.add_argument(
      '--train_images_per_s',
      type=float,
      default=0.0,
      help='what the train step consumes, for the ratio',
  )
  parser.add_argument(
      '--step_json',
      default='',
      help='benchmarks/step_throughput.py output to read that from',
  )
  parser.add_argument(
      '--out', default='', help='write the results to this JSON file'
  )
  args = parser.parse_args(argv)
  if not os.path.isdir(args.dir):
    print(f'error: --dir={args.dir!r} is not a folder', file=sys.stderr)
    return 2

  train_speed = args.train_images_per_s or None
  if args.step_json:
    with open(args.step_json) as f:
      train_speed = _find_step_speed(json.load(f), args.batch)
  results = []
  for name in args.settings.split(','):
    result = {
        'setting': name,
        'image_size': args.image_size,
        'batch': args.batch,
        **measure(
            args.dir,
            args.image_size,
            args.batch,
            args.batches,
            **SETTINGS[name],
        ),
    }
    if train_speed:
      result['train_images_per_s'] = train_speed
      result['ratio_to_train_step'] = round(
          result['images_per_s'] / train_speed, 1
      )
    print(json.dumps(result), flush=True)
    results.append(result)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
      json.dump(
          {
              'dir': os.path.abspath(args.dir),
              'machine': platform.platform(),
              'cpus': os.cpu_count(),
              'load_avg': os.getloadavg(),
              'command': ' '.join(sys.argv),
              'results': results,
          },
          f,
          indent=1,
      )
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
