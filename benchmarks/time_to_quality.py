"""Quality per training budget: FID/KID of a config after W minutes of training.

    python benchmarks/time_to_quality.py --config=configs/dcgan64.py \\
        --data_dir=/path/to/cat_faces_64 \\
        --features_path=/path/to/mobilenet_v2_1.0_224_quant.tflite \\
        --budget_min=40 --points=4 --out=benchmarks/results/ttq_dcgan64.json \\
        [--override model.g_width=32 ...]

Trains the config once, without a restart (the trainer itself,
`train.train_and_evaluate`, in a fresh workdir), for `--budget_min` minutes
of training wall time, and scores its EMA generator at `--points` evenly
spaced points of the budget with the project's `Scorer` (MobileNetV2 by
default: `--num_samples` samples against every image of the data folder).
The trainer's `on_step` hook (a `study.BudgetClock`, as the study's minutes
budget) scores the state when a point's time is reached, with the clock
paused, and stops the run after the last point.

`--features` and `--features_path` take comma-separated lists to score
with several networks in one pass: the samples are drawn once and every
network scores the same images, e.g.
`--features=mobilenet_v2,mobilenet_v2_inat` with both TFLite files (the
second network sees no ImageNet classes, so it scores runs whose
discriminator looks through the first). A point holds the first network's
scores at its top level and every network's under `by_features`. The
budget is the training loop's time: scoring, start-up and the one
compilation before the first step are not part of it (the record holds the
whole wall time too). A point lands at the first step that ends past its
fraction of the budget; the JSON records the real times.

Why one run: a point per trainer call, each resumed from the previous
one's checkpoint, trains the same steps (a resume is exact), but every
call pays start-up and compilation again. Measured on dcgan_cpu64 with the cat
faces, on the 2 cores shared with other jobs (load 10-13, 3 December
2026): a resume that trains no step took 81 s (input pipeline, state,
restore, compilation: no persistent compilation cache outside the tests),
10 steps from scratch 150 s, 10 more after a resume 124 s and 172 s. The
records in docs/results.md made before this change were measured that
way, the restarts inside their budget (`--probe_steps` was its first
chunk; the flag is accepted and unused).

The JSON holds, per point: training wall time, steps, images seen, training
FLOPs (`flop_count.dense_flops` of one step x steps, the dense convention of
torch's FlopCounterMode), FID, KID; and the machine, CPU count and the load
average before and after, since the cores may be shared.

With `--samples`, it trains nothing: it scores the samples another program
saved at its own budget points, with the same scorer and reference set. The
PyTorch peer's row comes from this:

    /tmp/torch/bin/python tools/torch_peer/peer_training_curve.py \\
        --peer-script /path/to/peer_torch_dcgan.py \\
        --data-dir /path/to/cat_faces_64 --budget-min 40 --sample-points 2 \\
        --samples-out /tmp/peer_samples.npz --out /tmp/peer_curve.json
    python benchmarks/time_to_quality.py --config=configs/dcgan64.py \\
        --data_dir=/path/to/cat_faces_64 --features_path=... \\
        --samples=/tmp/peer_samples.npz --out=benchmarks/results/ttq_peer.json

The file holds `images_<k>` (uint8 [N, H, W, 3]) with `steps`,
`train_wall_s` and `batch` per point, and may hold the training's
`loadavg_before` and `loadavg_after`; `--config` gives the scorer's settings
and the FLOPs of a step (the peer's networks are `dcgan64`'s).
"""

import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from catgan_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

cli.configure()

# pylint: disable=g-import-not-at-top,wrong-import-position
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import flop_count
from catgan_jax import inference
from catgan_jax import sampling
from catgan_jax import step as step_lib
from catgan_jax import study
from catgan_jax import train
from catgan_jax.evaluation import scorer
# pylint: enable=g-import-not-at-top,wrong-import-position


def _load_config(path: str, overrides: list[str]):
  path, _, argument = path.partition(':')  # file.py[:argument], as main.py.
  spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(argument) if argument else module.get_config()
  for item in overrides:
    field, _, text = item.partition('=')
    node = config
    *parents, leaf = field.split('.')
    for part in parents:
      node = node[part]
    old = node[leaf]
    node[leaf] = (
        type(old)(json.loads(text)) if not isinstance(old, str) else text
    )
  return config


def _step_flops(config):
  """(dense model FLOPs of one training iteration of `config`, its G)."""
  mesh = jax.sharding.Mesh(jax.devices()[:1], ('data',))
  run = train.build(config, mesh)
  generator, discriminator, state = run.generator, run.discriminator, run.state
  size = config.data.image_size
  n = step_lib.input_batch_size(config)
  batch = jnp.zeros((n, size, size, 3), jnp.uint8)
  if config.data.get('num_classes', 0):
    batch = (batch, jnp.zeros((n,), jnp.int32))
  flops = flop_count.dense_flops(
      step_lib.make_train_step(config, generator, discriminator), state, batch
  )
  return flops, generator


def replay(images: np.ndarray) -> scorer.GenerateFn:
  """A `GenerateFn` that hands out saved uint8 `images` in order.

  The latents (and a conditional scorer's labels) are ignored but for their
  count: the images were made by another program from its own latents, or
  recorded from the first network's pass, which drew the same labels.

  Raises:
    ValueError: more images asked for than saved.
  """
  position = 0

  def generate(latents: jax.Array, labels=None) -> np.ndarray:
    nonlocal position
    del labels  # The saved images were drawn with them.
    n = len(latents)
    if position + n > len(images):
      raise ValueError(f'{len(images)} images saved, {position + n} asked for')
    batch = images[position : position + n]
    position += n
    return batch.astype(np.float32) / 127.5 - 1.0

  return generate


def load_samples(path: str, num_samples: int, image_size: int):
  """The points of a samples file and the load while they were trained.

  Returns:
    ([(steps, train_wall_s, batch, images)] per point, {'loadavg_before',
    'loadavg_after'}: the training program's load averages, those of the
    file's arrays of those names that it has).

  Raises:
    ValueError: one line naming the file and what is wrong with it.
  """
  try:
    with np.load(path) as f:
      arrays = dict(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'--samples {path}: not a readable .npz ({e})') from e
  missing = {'steps', 'train_wall_s', 'batch'} - set(arrays)
  if missing:
    raise ValueError(f'--samples {path}: no {sorted(missing)} arrays')
  points = []
  for k, (steps, wall) in enumerate(
      zip(arrays['steps'], arrays['train_wall_s'])
  ):
    images = arrays.get(f'images_{k}')
    want = (image_size, image_size, 3)
    if images is None or images.dtype != np.uint8 or images.shape[1:] != want:
      raise ValueError(
          f'--samples {path}: images_{k} must be uint8 [N, {image_size}, '
          f'{image_size}, 3]'
      )
    if len(images) < num_samples:
      raise ValueError(
          f'--samples {path}: images_{k} has {len(images)} images, '
          f'--num_samples is {num_samples}'
      )
    points.append((int(steps), float(wall), int(arrays['batch']), images))
  if not points:
    raise ValueError(f'--samples {path}: no sample points')
  loads = {
      name: [float(v) for v in arrays[name]]
      for name in ('loadavg_before', 'loadavg_after')
      if name in arrays
  }
  return points, loads


def main() -> None:
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', required=True)
  parser.add_argument('--data_dir', required=True)
  parser.add_argument(
      '--features',
      default='mobilenet_v2',
      help='scoring network(s), comma-separated',
  )
  parser.add_argument(
      '--features_path',
      default='',
      help='their weights files, comma-separated in the same order',
  )
  parser.add_argument('--budget_min', type=float, default=40.0)
  parser.add_argument('--points', type=int, default=4)
  parser.add_argument(
      '--probe_steps',
      type=int,
      default=0,
      help='unused: training no longer restarts (older commands still parse)',
  )
  parser.add_argument('--num_samples', type=int, default=2000)
  parser.add_argument(
      '--workdir',
      default='',
      help='an empty or new folder (default: a new one in the temp dir)',
  )
  parser.add_argument('--out', required=True)
  parser.add_argument(
      '--override',
      action='append',
      default=[],
      help='field=value (JSON value), repeatable',
  )
  parser.add_argument(
      '--samples',
      default='',
      help='score this .npz of saved samples instead of training',
  )
  args = parser.parse_args()

  config = _load_config(args.config, args.override)
  saved, training_load = None, {}
  if args.samples:
    try:
      saved, training_load = load_samples(
          args.samples, args.num_samples, config.data.image_size
      )
    except ValueError as e:
      parser.error(str(e))
  names = args.features.split(',')
  paths = args.features_path.split(',') if args.features_path else ['']
  if len(paths) != len(names):
    parser.error(
        f'--features names {len(names)} networks, --features_path '
        f'{len(paths)} files'
    )
  with config.unlocked():
    config.data.dir = args.data_dir
    config.eval.every_steps = -1  # Scored here, outside the budget.
    config.eval.features = names[0]
    config.eval.features_path = paths[0]
    config.eval.num_samples = args.num_samples
    config.sample_every_steps = 10**9
    config.checkpoint_every_steps = 10**9
  if not saved and args.workdir and os.path.isdir(args.workdir):
    if os.listdir(args.workdir):
      parser.error(
          f'--workdir={args.workdir!r} is not empty: the budget counts from '
          'step 0; remove it or choose another'
      )
  run_scorer = MultiScorer(config, names, paths)
  flops, generator = _step_flops(config)
  load_before = os.getloadavg()
  wall_t0 = time.perf_counter()

  if saved is not None:
    points = [
        _point(wall, steps, batch, flops, run_scorer.score(replay(images)))
        for steps, wall, batch, images in saved
    ]
  else:
    points = _train_and_score(config, args, run_scorer, flops, generator)

  record = {
      'config': args.config,
      'overrides': args.override,
      'samples': args.samples or None,
      'budget_min': args.budget_min,
      'features': args.features,
      'num_samples': args.num_samples,
      'flops_per_step': flops,
      'points': points,
      # Training, scoring, start-up and compilation.
      'wall_s': round(time.perf_counter() - wall_t0, 1),
      'machine': platform.processor() or platform.machine(),
      'cpu_count': os.cpu_count(),
      'loadavg_before': load_before,
      'loadavg_after': os.getloadavg(),
      # With --samples, the two above are the scoring's; these the training's.
      **{f'training_{k}': v for k, v in training_load.items()},
      'jax': jax.__version__,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(record, f, indent=1)
  print(f'Wrote {args.out}.')


class MultiScorer:
  """`scorer.Scorer`s of several networks that score one set of samples.

  `score(generate)` draws the samples once (the first network's pass) and
  replays them to the others: every Scorer draws the same latents in the
  same batches (`scorer.evaluation_latents`), so each sees the very images
  it would have generated itself.
  """

  def __init__(self, config, names: list[str], paths: list[str]):
    self._scorers = {}
    for name, path in zip(names, paths):
      one = config.copy_and_resolve_references()
      with one.unlocked():
        one.eval.features, one.eval.features_path = name, path
      self._scorers[name] = scorer.Scorer(one)

  def score(self, generate: scorer.GenerateFn) -> dict:
    """The first network's scores, and every network's in `by_features`."""
    drawn = []

    def recording(latents, *labels):
      images = np.asarray(generate(latents, *labels))
      drawn.append(sampling.to_uint8(images))
      return images

    by_features = {}
    for name, one in self._scorers.items():
      if not by_features:
        by_features[name] = one.score(recording)
      else:
        saved = np.concatenate(drawn)
        by_features[name] = one.score(replay(saved))
    first = next(iter(by_features.values()))
    return {**first, 'by_features': by_features}


def _point(train_s: float, steps: int, batch: int, flops: float, scores):
  """One point of the record (printed as it is made)."""
  point = {
      'train_wall_s': round(train_s, 1),
      'steps': steps,
      'images_seen': steps * batch,
      'train_flops': flops * steps,
      **scores,
  }
  print(json.dumps(point), flush=True)
  return point


def _train_and_score(config, args, run_scorer, flops, generator) -> list:
  """Trains `config` once for the budget, scoring at each point on the way."""
  workdir = args.workdir or tempfile.mkdtemp(
      prefix='ttq_'
      + os.path.basename(args.config)
      .replace('.py', '')
      .replace(':', '_')
      .replace(',', '_')
      + '_'
  )
  budget_s = args.budget_min * 60
  targets = [budget_s * (k + 1) / args.points for k in range(args.points)]
  clock = study.BudgetClock(targets[0])
  # The trainer's evaluator samples this way: the EMA weights with their
  # standing statistics.
  sampling_state = jax.jit(inference.make_sampling_state_fn(generator, config))
  sample = jax.jit(inference.make_sample_fn(generator))
  points = []

  def on_step(step: int, state) -> bool:
    while clock(step, state):
      with clock.paused():
        ready = sampling_state(state)
        scores = run_scorer.score(lambda z, *y: sample(ready, z, *y))
        points.append(
            _point(clock.seconds, step, config.batch_size, flops, scores)
        )
      if len(points) == len(targets):
        return True
      clock.limit_s = targets[len(points)]
    return False

  with config.unlocked():
    config.num_train_steps = 10**9  # It stops on time.
  train.train_and_evaluate(config, workdir, on_step=on_step)
  if len(points) < len(targets):
    raise SystemExit(f'stopped after {len(points)} of {len(targets)} points')
  return points


if __name__ == '__main__':
  main()
