"""Reads and writes PyTorch state-dict files (`.pth`) with NumPy, without torch.

The standard FID Inception weights are published as a PyTorch state dict.
This module reads both formats `torch.save` has produced:

* the legacy format (PyTorch < 1.6, and the published FID weights): five
  pickles in a row (magic number, protocol version, system info, the object
  whose tensors refer to storages by persistent id, the storage keys), then
  each storage's raw bytes preceded by its element count as int64;
* the zip format (PyTorch >= 1.6): `<root>/data.pkl` plus one
  `<root>/data/<key>` entry of raw bytes per storage.

A file cut short (a download or copy that stopped) is told apart from a file
of something else: `TruncatedError` gives its size against the size the
header's storages add up to, or says that the header itself is cut.

Only the globals a state dict needs are accepted from the pickle (tensors,
storages, OrderedDict), so a file cannot run arbitrary code when loaded.
`save_legacy` writes the legacy format, which `torch.load` reads; it exists to
produce files in the published format for tests and conversions.
"""

import collections
from collections.abc import Mapping
import io
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_ZIP_LOCAL_HEADER = b'PK\x03\x04'

_STORAGE_DTYPES = {
    'DoubleStorage': np.float64,
    'FloatStorage': np.float32,
    'HalfStorage': np.float16,
    'LongStorage': np.int64,
    'IntStorage': np.int32,
    'ShortStorage': np.int16,
    'CharStorage': np.int8,
    'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
_DTYPE_STORAGES = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items()}


class _Storage:
  """A storage named by the pickle; its bytes are attached afterwards."""

  def __init__(self, dtype: np.dtype, key: str, numel: int):
    self.dtype = np.dtype(dtype)
    self.key = key
    self.numel = numel
    self.data: np.ndarray | None = None


class _StorageType:
  """Stands for `torch.<X>Storage` while unpickling."""

  def __init__(self, name: str):
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _LazyTensor:
  """A view into a storage, materialised once every storage is read."""

  def __init__(self, storage: _Storage, offset: int, size, stride):
    self.storage, self.offset = storage, offset
    self.size, self.stride = tuple(size), tuple(stride)

  def materialize(self) -> np.ndarray:
    data = self.storage.data
    if data is None:
      raise ValueError(f'Storage {self.storage.key} has no data in the file.')
    item = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[self.offset :],
        shape=self.size,
        strides=tuple(s * item for s in self.stride),
    )
    return np.array(view)  # A contiguous copy that owns its memory.


def _rebuild_tensor(storage, storage_offset, size, stride, *unused_args):
  return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused_args):
  return data


class _Unpickler(pickle.Unpickler):
  """Unpickler that only knows the globals of a state dict."""

  def __init__(self, file, storages: dict[str, _Storage]):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module: str, name: str):
    if module == 'collections' and name == 'OrderedDict':
      return collections.OrderedDict
    if module == 'torch._utils' and name == '_rebuild_tensor_v2':
      return _rebuild_tensor
    if module == 'torch._utils' and name == '_rebuild_parameter':
      return _rebuild_parameter
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise pickle.UnpicklingError(
        f'{module}.{name} is not allowed in a state-dict file.'
    )

  def persistent_load(self, pid):
    # Legacy: ('storage', type, key, location, numel, view_metadata);
    # zip: ('storage', type, key, location, numel).
    if not isinstance(pid, tuple) or pid[0] != 'storage':
      raise pickle.UnpicklingError(f'Unsupported persistent id {pid!r}.')
    storage_type, key, _, numel = pid[1:5]
    if len(pid) > 5 and pid[5] is not None:
      raise pickle.UnpicklingError('Storage views are not supported.')
    key = str(key)
    if key not in self._storages:
      self._storages[key] = _Storage(storage_type.dtype, key, numel)
    return self._storages[key]


def _materialize(obj):
  if isinstance(obj, _LazyTensor):
    return obj.materialize()
  if isinstance(obj, Mapping):
    return {k: _materialize(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v) for v in obj)
  return obj


class TruncatedError(ValueError):
  """A weights file that ends before the bytes its header announces.

  Attributes:
    path: the file.
    detail: its size against the expected one, e.g. '1,000 of 2,048 bytes'.
  """

  def __init__(self, path: str, detail: str):
    super().__init__(f'{path} is truncated ({detail})')
    self.path, self.detail = path, detail


def _truncated(path: str, size: int, expected: int | None) -> TruncatedError:
  if expected is None:
    # The header itself is cut: the sizes it would announce are unknown.
    return TruncatedError(path, f'{size:,} bytes, ending inside its header')
  return TruncatedError(path, f'{size:,} of {expected:,} bytes')


def _load_header_pickle(
    stream: io.BytesIO, path: str, unpickler: pickle.Unpickler | None = None
):
  """One pickle of the header; a cut one raises `TruncatedError`."""
  try:
    return (unpickler or pickle.Unpickler(stream)).load()
  except (EOFError, pickle.UnpicklingError):
    # A pickle is cut when the unpickler ran out of bytes: it read to the
    # end. Garbage fails before the end ("invalid load key").
    size = len(stream.getbuffer())
    if stream.tell() >= size:
      raise _truncated(path, size, None) from None
    raise


def _load_legacy(data: bytes, path: str) -> object:
  """Reads the legacy format; checks the size against the header first."""
  stream = io.BytesIO(data)
  if _load_header_pickle(stream, path) != _LEGACY_MAGIC:
    raise ValueError('Not a PyTorch file: wrong magic number.')
  if _load_header_pickle(stream, path) != _LEGACY_PROTOCOL:
    raise ValueError('Unsupported PyTorch legacy protocol version.')
  sys_info = _load_header_pickle(stream, path)
  if not isinstance(sys_info, dict) or not sys_info.get('little_endian', True):
    raise ValueError('Big-endian PyTorch files are not supported.')
  storages: dict[str, _Storage] = {}
  result = _load_header_pickle(stream, path, _Unpickler(stream, storages))
  keys = [str(key) for key in _load_header_pickle(stream, path)]
  unknown = sorted(set(keys) - set(storages))
  if unknown:
    raise ValueError(f'Storage {unknown[0]} is not referred to by any tensor.')
  # After the header, each storage is its element count (int64) and its
  # bytes: the header's element counts give the file's size.
  offset = stream.tell()
  expected = offset + sum(
      8 + storages[key].numel * storages[key].dtype.itemsize for key in keys
  )
  if len(data) < expected:
    raise _truncated(path, len(data), expected)
  for key in keys:
    storage = storages[key]
    (numel,) = struct.unpack_from('<q', data, offset)
    if numel != storage.numel:
      raise ValueError(
          f'Storage {key} has {numel} elements, its header says '
          f'{storage.numel}.'
      )
    storage.data = np.frombuffer(
        data, dtype=storage.dtype, count=numel, offset=offset + 8
    )
    offset += 8 + numel * storage.dtype.itemsize
  return result


def _load_zip(path: str) -> object:
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith('data.pkl')]
    if not pickles:
      raise ValueError(f'{path}: zip file without data.pkl.')
    root = pickles[0][: -len('data.pkl')]
    storages: dict[str, _Storage] = {}
    result = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
    for key, storage in storages.items():
      raw = archive.read(f'{root}data/{key}')
      storage.data = np.frombuffer(raw, dtype=storage.dtype)
  return result


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """Loads a PyTorch state dict as a dict of NumPy arrays.

  Args:
    path: a file written by `torch.save(state_dict, path)`, in either format.

  Returns:
    {parameter name: array}, in the file's order.

  Raises:
    TruncatedError: if the file ends before the bytes its header announces
      (cut short in a download or copy); the message names the path and
      both sizes.
    ValueError: if the file is not a state dict this reader understands.
  """
  path = os.fspath(path)
  if zipfile.is_zipfile(path):
    obj = _load_zip(path)
  else:
    with open(path, 'rb') as f:
      data = f.read()
    if data and _ZIP_LOCAL_HEADER.startswith(data[:4]):
      # A zip archive's directory is at its end: without it, the file was
      # cut short (torch.save's zip format).
      raise TruncatedError(
          path, f'{len(data):,} bytes of a zip archive without its end'
      )
    obj = _load_legacy(data, path)
  obj = _materialize(obj)
  if not isinstance(obj, Mapping):
    raise ValueError(f'{path} holds a {type(obj).__name__}, not a state dict.')
  return dict(obj)


class _TorchGlobal:
  """A `module.name` global that the writer emits without importing it."""

  def __init__(self, module: str, name: str):
    self.module, self.name = module, name

  def __call__(self, *args):
    # Never called; pickle only requires a reduce function to be callable.
    raise NotImplementedError(f'{self.module}.{self.name}')


class _StorageRef:
  """The storage of one array; pickled as a persistent id."""

  def __init__(self, key: str, array: np.ndarray):
    self.key, self.array = key, array


class _Tensor:
  """Pickles as torch._utils._rebuild_tensor_v2(storage, 0, size, stride)."""

  def __init__(self, storage: _StorageRef):
    self.storage = storage

  def __reduce__(self):
    array = self.storage.array
    stride = tuple(s // array.itemsize for s in array.strides)
    return (
        _TorchGlobal('torch._utils', '_rebuild_tensor_v2'),
        (
            self.storage,
            0,
            tuple(array.shape),
            stride,
            False,
            collections.OrderedDict(),
        ),
    )


class _Pickler(pickle._Pickler):  # pylint: disable=protected-access
  """Pure-Python pickler that writes torch globals and storage ids.

  The C pickler would import `torch` to check each global; this one writes
  the GLOBAL opcode for the stand-ins directly.
  """

  dispatch = pickle._Pickler.dispatch.copy()  # pylint: disable=protected-access

  def _save_torch_global(self, obj: _TorchGlobal) -> None:
    self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())

  dispatch[_TorchGlobal] = _save_torch_global

  def persistent_id(self, obj):
    if isinstance(obj, _StorageRef):
      storage_type = _TorchGlobal('torch', _DTYPE_STORAGES[obj.array.dtype])
      return ('storage', storage_type, obj.key, 'cpu', obj.array.size, None)
    return None


def save_legacy(
    state: Mapping[str, np.ndarray], path: str | os.PathLike[str]
) -> None:
  """Writes arrays as a PyTorch state dict in the legacy (pre-1.6) format.

  Args:
    state: {parameter name: array}; dtypes with a torch storage type.
    path: destination file; `torch.load(path)` reads it.

  Raises:
    ValueError: for a dtype torch has no storage for.
  """
  storages = []
  tensors = collections.OrderedDict()
  for name, value in state.items():
    value = np.array(value, order='C')  # Keeps 0-d arrays 0-d.
    if value.dtype not in _DTYPE_STORAGES:
      raise ValueError(f'{name}: dtype {value.dtype} has no torch storage.')
    storage = _StorageRef(str(len(storages)), value)
    storages.append(storage)
    tensors[name] = _Tensor(storage)
  with open(path, 'wb') as f:
    pickle.dump(_LEGACY_MAGIC, f, protocol=2)
    pickle.dump(_LEGACY_PROTOCOL, f, protocol=2)
    pickle.dump(
        {
            'protocol_version': _LEGACY_PROTOCOL,
            'little_endian': True,
            'type_sizes': {'short': 2, 'int': 4, 'long': 4},
        },
        f,
        protocol=2,
    )
    _Pickler(f, protocol=2).dump(tensors)
    pickle.dump([s.key for s in storages], f, protocol=2)
    for storage in storages:
      f.write(struct.pack('<q', storage.array.size))
      f.write(
          storage.array.astype(storage.array.dtype.newbyteorder('<')).tobytes()
      )
