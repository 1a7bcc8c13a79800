"""One writer per workdir, and every output path checked before any work.

`claim(workdir)` holds an exclusive OS lock (`fcntl.flock`) on
`workdir/.lock` while a command writes into a run directory. The kernel
drops the lock when the process ends, however it ends, so a SIGKILL leaves
no stale lock; a second writer (another trainer, `--start_over`, `generate`
or `evaluate` writing into the workdir) is refused with one line naming the
holder's PID and host. Readers take no lock and keep working. On a shared
file system the lock is taken by process 0 only (the trainer's
`claim_on_main`).

`check_writable(outputs)` probes every path a command will write by doing
what the command will do: it creates (and removes) a probe file with data
in each folder, creating missing folders and removing them again, and opens
existing files for appending. `os.access` is not enough: root passes it for
`/sys`, immutable files and full disks. A problem is one `cli.UserError`
naming the path, before anything is written.
"""

from collections.abc import Iterator, Sequence
import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import tempfile
from typing import NamedTuple

from catgan_jax import cli

LOCK_FILE = '.lock'
# Bytes written (and synced) into each probed folder: enough to need a new
# block, so that a full disk answers here rather than in the middle of a
# checkpoint.
_PROBE_BYTES = 4096


class Busy(cli.UserError):
  """Another process holds the workdir."""


class Output(NamedTuple):
  """A path a command writes.

  Attributes:
    path: the path.
    kind: 'dir' (a folder the command writes into) or 'file'.
    name: how the user gave it ('--out', 'workdir'); '' for a path inside
      the run directory, which is then named by its path alone.
  """

  path: str
  kind: str
  name: str = ''


def _label(output: Output) -> str:
  return f'{output.name}={output.path!r}' if output.name else output.path


def _first_existing(path: str) -> str:
  """The deepest existing ancestor of `path` (or `path` itself)."""
  path = os.path.abspath(path)
  while not os.path.lexists(path) and path != os.path.dirname(path):
    path = os.path.dirname(path)
  return path


def _wrong_type(output: Output) -> str:
  """Why `output` cannot be of its kind, and the way out ('' when it can)."""
  path = output.path
  if os.path.lexists(path):
    is_dir = os.path.isdir(path)
    if output.kind == 'dir' and not is_dir:
      return 'is a file, not a folder; move it away or choose another path'
    if output.kind == 'file' and is_dir:
      return 'is a folder, not a file; move it away or choose another path'
    return ''
  existing = _first_existing(path)
  if not os.path.isdir(existing):
    return (
        f'cannot be created: {existing} is a file, not a folder; choose '
        'another path'
    )
  parent = os.path.dirname(os.path.abspath(path))
  if output.kind == 'file' and not os.path.isdir(parent):
    return (
        f'cannot be created: its folder {parent} does not exist; create '
        'it or choose another path'
    )
  return ''


def _make_dirs(path: str) -> list[str]:
  """Creates `path` and its missing parents; returns those made, outermost first."""
  missing = []
  path = os.path.abspath(path)
  while not os.path.lexists(path):
    missing.append(path)
    path = os.path.dirname(path)
  made = []
  try:
    for folder in reversed(missing):
      os.mkdir(folder)
      made.append(folder)
  except OSError:
    _remove_dirs(made)
    raise
  return made


def _remove_dirs(made: Sequence[str]) -> None:
  """Removes folders `_make_dirs` made, innermost first, if they are empty."""
  for folder in reversed(made):
    try:
      os.rmdir(folder)
    except OSError:
      return  # Not empty (something was written after all): kept.


def probe_folder(path: str) -> None:
  """Creates, fills, syncs and removes a file in `path` (made if missing).

  Raises:
    OSError: the system refused.
  """
  made = _make_dirs(path)
  try:
    fd, probe = tempfile.mkstemp(prefix='.write-probe-', dir=path)
    try:
      os.write(fd, b'\0' * _PROBE_BYTES)
      os.fsync(fd)
    finally:
      os.close(fd)
      os.remove(probe)
  finally:
    _remove_dirs(made)


def _probe(output: Output) -> None:
  if output.kind == 'dir':
    probe_folder(output.path)
    return
  probe_folder(os.path.dirname(os.path.abspath(output.path)))
  if os.path.exists(output.path):
    # Appending nothing changes neither the contents nor the mtime.
    with open(output.path, 'ab'):
      pass


def _os_reason(error: OSError) -> str:
  reason = os.strerror(error.errno) if error.errno else str(error)
  where = f' ({error.filename})' if error.filename else ''
  return f'{reason}{where}'


def check_writable(outputs: Sequence[Output]) -> None:
  """Checks that every output can be written, leaving no trace.

  Args:
    outputs: the paths a command will write.

  Raises:
    cli.UserError: an output is of the wrong kind (a file where a folder
      goes, or the reverse); `cli.ResourceError` when the system refuses
      the write (permissions, read-only or full file system).
  """
  for output in outputs:
    wrong = _wrong_type(output)
    if wrong:
      raise cli.UserError(f'{_label(output)} {wrong}')
    try:
      _probe(output)
    except OSError as e:
      raise cli.ResourceError(
          f'cannot write {_label(output)}: {_os_reason(e)}; free space or '
          'fix permissions, or choose another path'
      ) from None


def check_free_space(output: Output, needed: int) -> None:
  """Refuses a folder whose file system has less than `needed` bytes free."""
  try:
    stat = os.statvfs(_first_existing(output.path))
  except OSError:
    return  # Not a local file system: the write itself will tell.
  free = stat.f_bavail * stat.f_frsize
  if free < needed:
    raise cli.ResourceError(
        f'cannot write {_label(output)}: {free / 2**20:.1f} MiB free, a '
        f'checkpoint needs about {needed / 2**20:.1f} MiB; free space or '
        'choose another path'
    )


def _holder(path: str) -> str:
  """Who holds the lock at `path`, as the lock file says."""
  try:
    with open(path) as f:
      record = json.load(f)
    return (
        f'{record["program"]} (PID {record["pid"]} on {record["host"]}, '
        f'since {record["since"]})'
    )
  except (OSError, ValueError, KeyError, TypeError):
    return 'another process (its PID is not recorded yet)'


def _same_file(fd: int, path: str) -> bool:
  try:
    a, b = os.fstat(fd), os.stat(path)
  except FileNotFoundError:
    return False
  return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _lock(workdir: str, label: str) -> int:
  """Takes the workdir's lock; returns its file descriptor."""
  path = os.path.join(workdir, LOCK_FILE)
  # A holder that ends removes the file; one opened just before that is
  # not the lock any more, so the lock is taken on the file at `path`.
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise Busy(
            f'{label}={workdir!r} is in use by {_holder(path)}; wait for it '
            'to end (or stop it), or use another workdir'
        ) from None
      raise cli.ResourceError(
          f'cannot lock {label}={workdir!r}: {_os_reason(e)}'
      ) from None
    if _same_file(fd, path):
      break
    os.close(fd)
  record = {
      'program': cli.program_name(),
      'pid': os.getpid(),
      'host': socket.gethostname(),
      'since': datetime.datetime.now(datetime.timezone.utc).strftime(
          '%Y-%m-%d %H:%M:%S UTC'
      ),
  }
  data = json.dumps(record).encode()
  os.ftruncate(fd, 0)
  os.pwrite(fd, data, 0)
  return fd


def _unlock(fd: int, workdir: str) -> None:
  path = os.path.join(workdir, LOCK_FILE)
  try:
    if _same_file(fd, path):
      os.remove(path)
  except OSError:
    pass  # Left behind, it is not a lock: the next run takes it.
  os.close(fd)  # Releases the lock.


@contextlib.contextmanager
def claim(
    workdir: str, outputs: Sequence[Output] = (), label: str = 'workdir'
) -> Iterator[None]:
  """Holds `workdir` for writing; checks `outputs` once it is held.

  The workdir (and missing parents) is created if needed; when the command
  ends without writing anything into it, it is removed again, as is the
  lock file, so a refused command leaves no trace. Remote paths
  (`gs://...`) are not locked or probed.

  Args:
    workdir: the run directory.
    outputs: the other paths the command will write (checked with
      `check_writable` under the lock).
    label: how the user gave the workdir ('workdir', '--workdir').

  Raises:
    Busy: another process holds the workdir.
    cli.UserError: the workdir or an output cannot be written.
  """
  if '://' in workdir:
    yield
    return
  check_writable([Output(workdir, 'dir', label)])
  made = _make_dirs(workdir)
  try:
    fd = _lock(workdir, label)
  except BaseException:
    _remove_dirs(made)
    raise
  try:
    check_writable(outputs)
    yield
  finally:
    _unlock(fd, workdir)
    _remove_dirs(made)


def claim_if_inside(
    workdir: str, path: str
) -> contextlib.AbstractContextManager[None]:
  """`claim(workdir)` when `path` lies inside `workdir`, else nothing.

  For the commands that read a run and write next to it (`plots`,
  `generate`, `evaluate`): writing into the run directory takes its lock,
  so a trainer running there refuses them; writing elsewhere does not.
  """
  root = os.path.abspath(workdir)
  inside = bool(path) and (
      os.path.commonpath([root, os.path.abspath(path)]) == root
  )
  return (
      claim(workdir, label='--workdir') if inside else contextlib.nullcontext()
  )


@contextlib.contextmanager
def claim_on_main(
    workdir: str, outputs: Sequence[Output] = ()
) -> Iterator[None]:
  """`claim` on process 0; with several processes all agree on the outcome.

  Every process enters and raises together: one that went on alone would
  wait in the first collective for ever.
  """
  import jax  # pylint: disable=g-import-not-at-top

  with contextlib.ExitStack() as stack:
    error = None
    if jax.process_index() == 0:
      try:
        stack.enter_context(claim(workdir, outputs))
      except cli.UserError as e:
        error = e
    if jax.process_count() > 1:
      import numpy as np  # pylint: disable=g-import-not-at-top
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      failed = multihost_utils.process_allgather(np.int32(error is not None))
      if error is None and np.max(failed):
        error = cli.UserError(
            f'process 0 cannot write workdir={workdir!r} (its log says why)'
        )
    if error is not None:
      raise error
    yield
