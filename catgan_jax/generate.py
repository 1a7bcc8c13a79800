"""Images from a trained run: PNG files, a grid, or latent interpolations.

  python -m catgan_jax.generate --workdir runs/x --num 1000 --out DIR \
      [--grid] [--interpolate K] [--seed S] [--step N|best|latest]

Without --grid or --interpolate it writes `num` PNG files (000000.png, ...).
--grid writes the `num` images as one picture, grid.png. --interpolate K
walks K steps along great circles between random latents (--paths of them)
and writes interpolation.png (one path per row) and interpolation.gif (all
paths moving together, there and back). The generator is the run's EMA
generator when it has one; it runs on whatever JAX devices are present.

A class-conditional run takes `--class NAME|INDEX` (every image of that
class) or `--class all` (`num` images of every class from the same latents,
files in class order, the grid one row per class); without it the classes
come in equal blocks.

`--step latest` is the newest checkpoint that restores: a damaged one is
skipped with a warning, as the trainer does. Files already in --out that
would be overwritten are refused unless --overwrite; --out is checked for
writing before the generator is loaded, and an --out inside the run
directory waits for no trainer: it is refused while one runs there.
"""

from collections.abc import Callable, Sequence
import os

from absl import flags
from absl import logging
import jax
import numpy as np

from catgan_jax import cli
from catgan_jax import config_lib
from catgan_jax import inference
from catgan_jax import sampling
from catgan_jax import workdir as workdir_lib

SampleFn = Callable[[np.ndarray], np.ndarray]


def latents(seed: int, num: int, z_dim: int) -> np.ndarray:
  """`num` latents z ~ N(0, I) from `seed`, as float32 [num, z_dim]."""
  return np.asarray(
      jax.random.normal(jax.random.PRNGKey(seed), (num, z_dim)), np.float32
  )


def generate_images(
    sample: SampleFn,
    z: np.ndarray,
    batch_size: int = 100,
    labels: np.ndarray | None = None,
) -> np.ndarray:
  """Runs the generator over `z` (of classes `labels`) in batches; NHWC."""
  return np.concatenate(
      [
          np.asarray(
              sample(z[i : i + batch_size])
              if labels is None
              else sample(z[i : i + batch_size], labels[i : i + batch_size])
          )
          for i in range(0, z.shape[0], batch_size)
      ]
  )


def class_indices(config, spec: str) -> list[int] | None:
  """The classes `--class` names: an index, a class name or 'all'.

  Returns:
    The class indices, or None for `spec=''` (no class chosen).

  Raises:
    cli.UserError: a class the run does not have, or a run without classes.
  """
  if not spec:
    return None
  num_classes = config.data.get('num_classes', 0)
  if not num_classes:
    raise cli.UserError(
        f'--class={spec!r}: this run is unconditional (data.num_classes=0)'
    )
  if spec == 'all':
    return list(range(num_classes))
  if spec.isdigit():
    if int(spec) >= num_classes:
      raise cli.UserError(
          f'--class={spec} is not below data.num_classes={num_classes}'
      )
    return [int(spec)]
  from catgan_jax.data import sources  # pylint: disable=g-import-not-at-top

  try:
    names = sources.class_names(config)
  except (OSError, ValueError) as e:
    raise cli.UserError(
        f"--class={spec!r}: the class names cannot be read from the run's "
        f'data ({e}); give the class index (0-{num_classes - 1})'
    ) from None
  if spec not in names:
    raise cli.UserError(
        f'--class={spec!r} is not a class of this run (classes: '
        f'{", ".join(names[:12])}{", ..." if len(names) > 12 else ""})'
    )
  return [names.index(spec)]


def interpolation_frames(
    sample: SampleFn,
    z_start: np.ndarray,
    z_end: np.ndarray,
    steps: int,
    batch_size: int = 100,
) -> np.ndarray:
  """Images along slerp paths from each z_start[i] to z_end[i].

  Args:
    sample: the generator, latents -> images.
    z_start: start latents [P, z_dim].
    z_end: end latents [P, z_dim].
    steps: points per path, ends included (>= 2).
    batch_size: latents per generator call.

  Returns:
    Images [P, steps, H, W, C].
  """
  paths = np.stack(
      [sampling.interpolate(a, b, steps) for a, b in zip(z_start, z_end)]
  )
  flat = generate_images(sample, paths.reshape(-1, paths.shape[-1]), batch_size)
  return flat.reshape(paths.shape[:2] + flat.shape[1:])


def file_names(num: int, grid: bool = False, interpolate: int = 0) -> list[str]:
  """The names of the files `write_images` writes with these options."""
  names = ['interpolation.png', 'interpolation.gif'] if interpolate else []
  if grid:
    names.append('grid.png')
  elif not interpolate:
    names += [f'{i:06d}.png' for i in range(num)]
  return names


def check_options(
    out_dir: str,
    *,
    num: int = 1000,
    grid: bool = False,
    interpolate: int = 0,
    paths: int = 8,
    batch_size: int = 100,
    overwrite: bool = False,
) -> None:
  """Refuses bad counts, an --out that cannot be written, and overwriting.

  Raises:
    cli.UserError: naming the option and its value.
  """
  for name, value in (
      ('num', num),
      ('paths', paths),
      ('batch_size', batch_size),
  ):
    if value < 1:
      raise cli.UserError(f'--{name}={value} must be >= 1')
  if interpolate == 1 or interpolate < 0:
    raise cli.UserError(
        f'--interpolate={interpolate} needs >= 2 points ' '(0 = off)'
    )
  workdir_lib.check_writable([workdir_lib.Output(out_dir, 'dir', '--out')])
  existing = [
      name
      for name in file_names(num, grid, interpolate)
      if os.path.lexists(os.path.join(out_dir, name))
  ]
  if existing and not overwrite:
    more = f' and {len(existing) - 1} more' if len(existing) > 1 else ''
    raise cli.UserError(
        f'--out={out_dir!r} already holds {existing[0]}{more}, which this '
        'would overwrite; use --overwrite, or another folder'
    )


def write_images(
    sample: SampleFn,
    z_dim: int,
    out_dir: str,
    num: int = 1000,
    seed: int = 0,
    grid: bool = False,
    interpolate: int = 0,
    paths: int = 8,
    batch_size: int = 100,
    overwrite: bool = False,
    classes: Sequence[int] | None = None,
) -> list[str]:
  """Writes images of a generator; see the module docstring.

  Args:
    sample: the generator, latents [N, z_dim] -> images in [-1, 1].
    z_dim: size of its latents.
    out_dir: where the files go (created).
    num: number of images (files or grid cells).
    seed: seed of the latents.
    grid: write one grid picture instead of separate files.
    interpolate: points per interpolation path (0 = no interpolation).
    paths: number of interpolation paths.
    batch_size: latents per generator call.
    overwrite: replace files of the same names in `out_dir`.
    classes: class indices of a conditional generator: `num` images of
      each from the same latents (the grid one row per class); one class
      also conditions the interpolation.

  Returns:
    The paths of the files written.

  Raises:
    cli.UserError: on bad counts, an output path that cannot be written, or
      files it would overwrite (without `overwrite`).
  """
  if classes and interpolate and len(classes) > 1:
    raise cli.UserError(
        '--interpolate takes one --class (an index or a name), not all'
    )
  if classes and len(classes) == 1:
    unconditioned, label = sample, classes[0]
    sample = lambda z: unconditioned(z, np.full(len(z), label, np.int32))
  per_class = num
  if classes and len(classes) > 1:
    num = num * len(classes)
  check_options(
      out_dir,
      num=num,
      grid=grid,
      interpolate=interpolate,
      paths=paths,
      batch_size=batch_size,
      overwrite=overwrite,
  )
  os.makedirs(out_dir, exist_ok=True)
  written = []
  if interpolate:
    z = latents(seed, 2 * paths, z_dim)
    frames = interpolation_frames(
        sample, z[:paths], z[paths:], interpolate, batch_size
    )
    strip = sampling.make_grid(
        frames.reshape((-1,) + frames.shape[2:]), ncol=interpolate
    )
    written.append(os.path.join(out_dir, 'interpolation.png'))
    sampling.save_png(strip, written[-1])
    # There and back, so that the loop has no jump.
    order = list(range(interpolate)) + list(range(interpolate - 2, 0, -1))
    gif = [sampling.make_grid(frames[:, t]) for t in order]
    written.append(os.path.join(out_dir, 'interpolation.gif'))
    sampling.save_gif(gif, written[-1], duration_ms=100)
  if grid or not interpolate:
    ncol, labels, z = None, None, latents(seed, num, z_dim)
    if classes and len(classes) > 1:
      ncol, z = per_class, np.tile(z[:per_class], (len(classes), 1))
      labels = np.repeat(np.asarray(classes, np.int32), per_class)
    images = generate_images(sample, z, batch_size, labels)
    if grid:
      written.append(os.path.join(out_dir, 'grid.png'))
      sampling.save_png(sampling.make_grid(images, ncol=ncol), written[-1])
    else:
      for i, image in enumerate(images):
        written.append(os.path.join(out_dir, f'{i:06d}.png'))
        sampling.save_png(image, written[-1])
  logging.info('Wrote %d files to %s.', len(written), out_dir)
  return written


def generate(
    workdir: str, out_dir: str, step: str | int = 'latest', **kwargs
) -> list[str]:
  """Loads a run's generator at `step` and calls `write_images`.

  Args:
    workdir: the run directory.
    out_dir: where the files go.
    step: 'latest', 'best' or a checkpoint step.
    **kwargs: the options of `write_images`, and `classes_spec`: the
      `--class` value ('' for none).

  Returns:
    The paths of the files written.

  Raises:
    cli.UserError: on a missing run or checkpoint, or bad options (before
      anything is written).
  """
  # No run here: one line, nothing built.
  classes = class_indices(
      config_lib.load_config(workdir), kwargs.get('classes_spec', '')
  )
  kwargs.pop('classes_spec', None)
  options = {
      k: v
      for k, v in kwargs.items()
      if k in ('num', 'grid', 'interpolate', 'paths', 'batch_size', 'overwrite')
  }
  if classes:
    options['num'] = options.get('num', 1000) * len(classes)
  check_options(out_dir, **options)
  with workdir_lib.claim_if_inside(workdir, out_dir):
    config, sample, chosen = inference.load_generator(workdir, step)
    logging.info('Generator of %s at step %d.', workdir, chosen)
    return write_images(
        sample, config.model.z_dim, out_dir, classes=classes, **kwargs
    )


def _define_flags() -> None:
  # Defined only when run as a program, so that importing this module next
  # to the trainer adds no flags.
  flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
  flags.DEFINE_string('out', None, 'Output directory.', required=True)
  flags.DEFINE_integer('num', 1000, 'Number of images.')
  flags.DEFINE_string('step', 'latest', "Checkpoint: 'latest', 'best' or N.")
  flags.DEFINE_integer('seed', 0, 'Seed of the latents.')
  flags.DEFINE_bool('grid', False, 'Write one grid picture of --num images.')
  flags.DEFINE_integer(
      'interpolate', 0, 'Points per latent interpolation path (0 = off).'
  )
  flags.DEFINE_integer('paths', 8, 'Number of interpolation paths.')
  flags.DEFINE_integer('batch_size', 100, 'Latents per generator call.')
  flags.DEFINE_string(
      'class',
      '',
      'Class of a conditional run: a name, an index, or all (one row each).',
  )
  flags.DEFINE_bool(
      'overwrite', False, 'Replace files of the same names in --out.'
  )


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run refuses extra arguments.
  f = flags.FLAGS
  with cli.library_log(cli.reader_library_log()):
    generate(
        f.workdir,
        f.out,
        num=f.num,
        step=f.step,
        seed=f.seed,
        grid=f.grid,
        interpolate=f.interpolate,
        paths=f.paths,
        batch_size=f.batch_size,
        overwrite=f.overwrite,
        classes_spec=f['class'].value,
    )


if __name__ == '__main__':
  cli.configure()
  _define_flags()
  cli.run(main)
