"""A user's clone: every shipped config runs from a copy with nothing beside it.

The repository's tracked files are copied to a temp dir with no `../shared`
next to it; HOME (and so the cache) is an empty temp dir, and every download
is refused at once (a proxy on a closed local port). Each file in configs/
then runs through `main.py`, at a tiny size, on a small folder of images the
test writes:

* with evaluation on (one config of each kind), the standard FID weights cannot be found or downloaded:
  the run stops with exit 2 and one line naming `eval.features_path`, and the
  workdir is never created;
* with evaluation off, it trains 2 steps and checkpoints; a config reading
  a TFDS data set first stops (exit 2) with one line saying how to prepare
  the absent data, then trains on the folder (`--config.data.source=folder`).
"""

import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import helpers
from catgan_jax.data import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = helpers.experiment_configs()
TINY = [
    '--config.num_train_steps=2',
    '--config.batch_size=8',
    '--config.log_every_steps=1',
    '--config.sample_every_steps=2',
    '--config.checkpoint_every_steps=2',
    '--config.data.image_size=16',
    '--config.data.min_size=8',
    '--config.model.z_dim=8',
    '--config.model.g_width=4',
    '--config.model.d_width=4',
    # A projected discriminator's feature network, small and untrained.
    '--config.model.feature_random_init=True',
    '--config.model.interp_size=64',
]


@pytest.fixture(scope='module')
def clone(tmp_path_factory):
  """(repo copy, image folder, environment) with nothing beside the copy."""
  base = tmp_path_factory.mktemp('user')
  repo = base / 'catgan_jax_clone'
  for path in helpers.tracked_files():
    source = os.path.join(ROOT, path)
    if os.path.isfile(source):
      os.makedirs(repo / os.path.dirname(path), exist_ok=True)
      shutil.copy2(source, repo / path)
  assert not (base / 'shared').exists()
  images = base / 'my_cats'
  images.mkdir()
  for i, face in enumerate(synthetic.draw_cat_faces(8, size=32, seed=3)):
    Image.fromarray(np.asarray(face, np.uint8)).save(images / f'cat{i}.png')
  home = base / 'home'
  home.mkdir()
  env = {
      k: v
      for k, v in os.environ.items()
      if not k.startswith(('XDG_', 'PYTHONPATH'))
  }
  env.update(
      HOME=str(home),
      JAX_PLATFORMS='cpu',
      http_proxy='http://127.0.0.1:9',
      https_proxy='http://127.0.0.1:9',
      HTTP_PROXY='http://127.0.0.1:9',
      HTTPS_PROXY='http://127.0.0.1:9',
      no_proxy='',
      NO_PROXY='',
  )
  return repo, images, env


def _main(clone, name, workdir, *extra):
  repo, images, env = clone
  args = [
      sys.executable,
      'main.py',
      f'--config={helpers.config_flag(name)}',
      f'--workdir={workdir}',
      f'--config.data.dir={images}',
      *TINY,
      *extra,
  ]
  return subprocess.run(
      args, cwd=repo, env=env, capture_output=True, text=True, timeout=600
  )


def _one_per_kind(names):
  """The first config of each (model, data source, scorer) kind.

  The evaluation set-up a clone lacks fails the same way for every config of
  a kind, before anything of the config's own runs; one subprocess per kind
  keeps the check's coverage at a third of its cost.
  """
  kinds = {}
  for name in names:
    config = helpers.load_config(name)
    kind = (config.model.name, config.data.source, config.eval.features)
    kinds.setdefault(kind, name)
  return sorted(kinds.values())


@pytest.mark.parametrize('name', _one_per_kind(CONFIGS))
def test_evaluation_without_its_weights_stops_before_the_workdir(
    clone, name, tmp_path
):
  workdir = tmp_path / 'run'
  proc = _main(clone, name, workdir, '--config.eval.every_steps=0')
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  errors = [l for l in proc.stderr.splitlines() if 'main.py: error:' in l]
  assert len(errors) == 1, proc.stderr[-3000:]
  # The default a user gets is the standard FID network, and the way out
  # is named: the weights path, the offline backend, or no evaluation.
  assert re.search(
      r'the inception_v3 weights are not in .*downloading .* ' r'failed',
      errors[0],
  ), errors[0]
  for way_out in ('eval.features_path', 'mobilenet_v2', 'eval.every_steps=-1'):
    assert way_out in errors[0], errors[0]
  assert not workdir.exists()
  # No half-downloaded weights are left in the cache.
  cache = os.path.join(clone[2]['HOME'], '.cache', 'catgan_jax')
  assert not [f for _, _, files in os.walk(cache) for f in files]


def _train_from_clone(clone, name, workdir):
  """The subprocess runs of one config from the clone: (tfds check, training).

  A config reading a TFDS data set is first run as shipped (it must stop with
  one line saying how to prepare the absent data), then on the folder.
  """
  extra = ['--config.eval.every_steps=-1']
  config = helpers.load_config(name)
  if config.data.source != 'tfds':
    return None, _main(clone, name, workdir, *extra)
  tfds_check = _main(clone, name, workdir, *extra)
  extra.append('--config.data.source=folder')
  if config.data.num_classes:
    # A class-conditional config trains on the synthetic coat colours.
    extra[-1] = '--config.data.source=synthetic'
    extra.append('--config.data.num_classes=4')
  if workdir.exists():
    return tfds_check, None
  return tfds_check, _main(clone, name, workdir, *extra)


@pytest.fixture(scope='module')
def clone_runs(clone, request, tmp_path_factory):
  """name -> future of `_train_from_clone`, for every selected config.

  Each run is a fresh process that spends most of its time importing and
  compiling, on one core: two at a time keep both cores busy.
  """
  selected = [
      item.callspec.params['name']
      for item in request.session.items
      if getattr(item, 'originalname', '')
      == 'test_config_trains_from_a_users_clone'
  ]
  root = tmp_path_factory.mktemp('clone_runs')
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
  runs = {}
  for name in selected:
    workdir = root / re.sub(r'\W', '_', name)
    runs[name] = (pool.submit(_train_from_clone, clone, name, workdir), workdir)
  yield runs
  pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_trains_from_a_users_clone(clone_runs, name):
  future, workdir = clone_runs[name]
  tfds_check, proc = future.result()
  if tfds_check is not None:
    assert tfds_check.returncode == 2, tfds_check.stderr[-3000:]
    errors = [
        l for l in tfds_check.stderr.splitlines() if 'main.py: error:' in l
    ]
    assert (
        len(errors) == 1 and 'Traceback' not in tfds_check.stderr
    ), tfds_check.stderr[-3000:]
    assert re.search(
        r"tfds '\w+'.*cannot be read.*tfds build \w+", errors[0]
    ), errors[0]
    assert proc is not None, f'{name}: the refused run created {workdir}'
  assert proc.returncode == 0, proc.stderr[-3000:]
  steps = sorted(
      int(d) for d in os.listdir(workdir / 'checkpoints') if d.isdigit()
  )
  assert steps[-1] == 2, steps
  records = [
      json.loads(line)
      for line in (workdir / 'metrics.jsonl').read_text().splitlines()
  ]
  losses = [r['d_loss'] for r in records] + [r['g_loss'] for r in records]
  assert len(losses) == 4 and np.isfinite(losses).all(), records
  # The run reads as one line per logged step, without framework notices.
  assert re.search(
      r'step 2/2  [0-9.]+ steps/s  ETA \S+  d_loss ', proc.stderr
  ), proc.stderr[-3000:]
  for chatter in (
      'Setting work unit notes',
      'oneDNN',
      'libtpu',
      'checkpoint_manager.py',
  ):
    assert chatter not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize('name', CONFIGS)
def test_config_docstring_gives_a_command_a_clone_can_run(name):
  with open(os.path.join(ROOT, 'configs', f'{name.partition(":")[0]}.py')) as f:
    text = f.read()
  if name != 'default':
    assert 'python main.py --config=configs/' in text, name
    assert f'--config={helpers.config_flag(name)}' in text, name
  assert '../shared' not in text, name


def test_nothing_in_the_package_or_its_tools_points_beside_the_repository():
  # The benchmarks and tools take such paths as flags; only the tests fill
  # them in (tests/helpers.py).
  offenders = []
  for pattern in (
      'catgan_jax/**/*.py',
      'configs/*.py',
      'main.py',
      'benchmarks/*.py',
      'tools/**/*.py',
  ):
    for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
      with open(path) as f:
        for number, line in enumerate(f, start=1):
          if re.search(r"\.\./shared|['\"]shared['\"]", line):
            offenders.append(f'{os.path.relpath(path, ROOT)}:{number}')
  assert not offenders, offenders
