"""A weights file cut short anywhere is named truncated, with its sizes.

A `.pth` cut in a download or a copy can end inside any part of it: one of
the five header pickles of the legacy format, a storage's element count or
its bytes, or (zip format) anywhere before the archive's directory at its
end. Each cut is reported as `<path> is truncated (N of M bytes)` (M from
the header's storage sizes) or, when the header itself is cut and M is not
known yet, `(N bytes, ending inside its header)`; never as a parser error.
"""

import io
import os
import pickletools
import re

import numpy as np
import pytest

from catgan_jax import cli
from catgan_jax.evaluation import features
from catgan_jax.evaluation import inception_v3
from catgan_jax.evaluation import torch_weights
import features_test

_STATE = {
    'conv.weight': np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
    'bn.num_batches_tracked': np.array(7, np.int64),
    'fc.bias': np.linspace(-1, 1, 5),
}
# The legacy format's five header pickles.
_HEADER = ('magic', 'protocol', 'sys_info', 'tensors', 'keys')
_SIZES = r'[\d,]+ of [\d,]+ bytes|[\d,]+ bytes, ending inside its header'


def _legacy_regions(data: bytes) -> dict[str, tuple[int, int]]:
  """[start, end) of each part of a legacy file written by save_legacy."""
  stream = io.BytesIO(data)
  regions, start = {}, 0
  for name in _HEADER:
    for _ in pickletools.genops(stream):  # Reads up to its STOP opcode.
      pass
    regions[name] = (start, stream.tell())
    start = stream.tell()
  for i, value in enumerate(_STATE.values()):
    regions[f'count{i}'] = (start, start + 8)
    regions[f'data{i}'] = (start + 8, start + 8 + value.nbytes)
    start += 8 + value.nbytes
  assert start == len(data)
  return regions


@pytest.fixture(scope='module')
def legacy(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('w') / 'w.pth')
  torch_weights.save_legacy(_STATE, path)
  with open(path, 'rb') as f:
    return f.read()


def _cut(data: bytes, n: int, folder) -> str:
  path = os.path.join(folder, f'cut{n}.pth')
  with open(path, 'wb') as f:
    f.write(data[:n])
  return path


@pytest.mark.parametrize(
    'region',
    list(_HEADER)
    + [f'{part}{i}' for i in range(len(_STATE)) for part in ('count', 'data')],
)
def test_a_legacy_file_cut_anywhere_is_truncated(region, legacy, tmp_path):
  start, end = _legacy_regions(legacy)[region]
  in_header = region in _HEADER
  for n in range(start, end):  # Every cut point of the region.
    path = _cut(legacy, n, tmp_path)
    with pytest.raises(torch_weights.TruncatedError) as info:
      torch_weights.load(path)
    expected = (
        f'{n:,} bytes, ending inside its header'
        if in_header
        else f'{n:,} of {len(legacy):,} bytes'
    )
    assert str(info.value) == f'{path} is truncated ({expected})'
    os.remove(path)


def test_a_zip_file_cut_anywhere_is_truncated(tmp_path):
  # torch.save's zip format (written by torch; see features_test.py).
  data = open(
      features_test._fixture(features_test._TORCH_ZIP, tmp_path, 'z.pth'), 'rb'
  ).read()
  for n in range(1, len(data), 7):
    path = _cut(data, n, tmp_path)
    with pytest.raises(
        torch_weights.TruncatedError,
        match=re.escape(f'({n:,} bytes of a zip archive without its end)'),
    ):
      torch_weights.load(path)
    os.remove(path)


def test_whole_files_and_garbage_are_not_truncated(legacy, tmp_path):
  state = torch_weights.load(_cut(legacy, len(legacy), tmp_path))
  for name, value in _STATE.items():
    np.testing.assert_array_equal(state[name], value)
  for garbage in (b'not a torch file', b'\x80\x02K\x05.' + bytes(range(50))):
    path = os.path.join(tmp_path, 'garbage.pth')
    with open(path, 'wb') as f:
      f.write(garbage)
    with pytest.raises(Exception) as info:
      torch_weights.load(path)
    assert not isinstance(info.value, torch_weights.TruncatedError)


def test_storage_count_that_contradicts_the_header_is_refused(legacy, tmp_path):
  start, _ = _legacy_regions(legacy)['count0']
  damaged = bytearray(legacy)
  damaged[start] -= 1  # 23 elements where the header says 24.
  path = _cut(bytes(damaged), len(damaged), tmp_path)
  with pytest.raises(ValueError, match='has 23 elements, its header says 24'):
    torch_weights.load(path)


def test_truncated_weights_are_one_clear_line(legacy, tmp_path):
  path = _cut(legacy, len(legacy) - 3, tmp_path)
  with pytest.raises(cli.UserError) as info:
    features.load_network('inception_v3', path)
  line = str(info.value)
  assert line.startswith(
      f'eval.features_path={path!r} is truncated ({len(legacy) - 3:,} of '
      f'{len(legacy):,} bytes); set --config.eval.features_path'
  )
  assert 'not an inception_v3' not in line and '\n' not in line
  # Whole, the same file is a state dict of another network.
  whole = _cut(legacy, len(legacy), tmp_path)
  with pytest.raises(cli.UserError, match='is not an inception_v3 weights'):
    features.load_network('inception_v3', whole)


@pytest.mark.parametrize('cut', ['header', 'data', 'whole'])
def test_bad_downloaded_weights_name_the_cache_file(
    cut, legacy, tmp_path, monkeypatch
):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  cached = inception_v3.default_path()
  os.makedirs(os.path.dirname(cached))
  n = {'header': 40, 'data': len(legacy) - 1, 'whole': len(legacy)}[cut]
  with open(cached, 'wb') as f:
    f.write(legacy[:n])
  with pytest.raises(cli.UserError) as info:
    features.load_network('inception_v3', '')
  line = str(info.value)
  problem = (
      'is not an inception_v3 weights file'
      if cut == 'whole'
      else rf'is truncated \(({_SIZES})\)'
  )
  assert re.match(
      f"eval.features_path='': the downloaded weights {re.escape(cached)} "
      f'{problem}.*; delete that file to download it again, or ',
      line,
  ), line
