"""What every catgan_jax command shares: one-line errors and readable logs.

Each entry point (`main.py`, `generate`, `evaluate`, `plots`, `scan`,
`prepare_cat`) answers a user mistake the same way: one line on stderr,
`<program>: error: <what, which field or file, the way out>`, exit code 2, no
traceback and no help text (help only on `--help`). The mistake is raised as
a `UserError` anywhere below the entry point; `run` (absl programs) or `guard`
(argparse programs) turns it into that line.

`configure()` holds the process-wide runtime settings (XLA flags, JAX's
random-number setting, TensorFlow's C++ log level); the entry points call it
before importing JAX-using modules. Importing the package changes nothing.
"""

from collections.abc import Callable, Sequence
import argparse
import contextlib
import importlib
import importlib.util
import logging as std_logging
import os
import sys
import threading
from typing import NoReturn

EXIT_USER_ERROR = 2


class UserError(ValueError):
  """A problem the user can fix; its message is the one line they read."""


class ResourceError(UserError):
  """The machine refused a write (disk full, permission lost)."""


def program_name() -> str:
  """`python -m catgan_jax.generate` -> 'catgan_jax.generate'."""
  name = os.path.basename(sys.argv[0]) if sys.argv else 'catgan_jax'
  if name == '__main__.py' or name.endswith('.py'):
    main = sys.modules.get('__main__')
    spec = getattr(main, '__spec__', None)
    if spec is not None and spec.name:
      return spec.name
  return name


def report(message: str) -> int:
  """Prints `<program>: error: <message>` (one line); returns exit code 2."""
  line = ' '.join(str(message).split())
  print(f'{program_name()}: error: {line}', file=sys.stderr, flush=True)
  return EXIT_USER_ERROR


def fail(message: str) -> NoReturn:
  """`report(message)`, then exit with 2."""
  sys.exit(report(message))


def configure() -> None:
  """Process-wide runtime settings; call before JAX starts a backend.

  XLA:CPU hands every convolution to YNNPACK by default; its weight gradients
  ran at 3-30 GFLOP/s on DCGAN-64's layers, against 120-140 for XLA's own
  (Eigen) convolutions (jax 0.10.2, 2 cores). A value the user set wins.
  libtpu parses XLA_FLAGS with its own XLA build, which need not know this CPU
  flag (an unknown flag aborts), so TPU installs are left alone.

  With partitionable threefry (JAX's default), every parameter initialiser
  compiles its own slow kernel on XLA:CPU (DCGAN-64's init: 34 s against 8 s).
  The random streams of this project are defined with it off.
  """
  flag = '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'
  xla_flags = os.environ.get('XLA_FLAGS', '')
  if (
      'xla_cpu_experimental_ynn_fusion_type' not in xla_flags
      and importlib.util.find_spec('libtpu') is None
  ):
    os.environ['XLA_FLAGS'] = f'{xla_flags} {flag}'.strip()
  # TensorFlow's C++ notices (oneDNN, CPU features) are not for the user.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import jax  # pylint: disable=g-import-not-at-top

  jax.config.update('jax_threefry_partitionable', False)


def _import_quietly(module: str) -> None:
  """Imports `module` with the C-level stderr muted.

  TensorFlow's C++ logger prints its oneDNN notice at import, whatever
  TF_CPP_MIN_LOG_LEVEL says. A failing import is retried unmuted, so that
  its error shows.
  """
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError):
    return
  try:
    with open(os.devnull, 'w') as devnull:
      os.dup2(devnull.fileno(), 2)
      try:
        importlib.import_module(module)
        return
      except Exception:  # pylint: disable=broad-except
        pass
      finally:
        os.dup2(saved, 2)
  finally:
    os.close(saved)
  importlib.import_module(module)


# The package's own folder: a record from a file below it is catgan_jax's
# (a checkout may itself be called catgan_jax, with its .venv inside).
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_own_or_warning(record: std_logging.LogRecord) -> bool:
  """Keeps catgan_jax's records and every library's warnings and errors."""
  return record.levelno >= std_logging.WARNING or os.path.abspath(
      record.pathname
  ).startswith(_PACKAGE_DIR)


def quiet_libraries(mute_tensorflow: bool = True) -> None:
  """Drops other libraries' INFO records unless --verbosity is above 0.

  A run then reads as catgan_jax's own lines (progress, scores, where files
  went); `--verbosity=1` brings back the frameworks' notices. TensorFlow is
  imported here, muted, because its C++ notices come at import.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top

  if flags.FLAGS.is_parsed() and flags.FLAGS.verbosity > 0:
    return
  logging.get_absl_handler().addFilter(_is_own_or_warning)
  if mute_tensorflow and 'tensorflow' not in sys.modules:
    _import_quietly('tensorflow')


def _is_library_record(record: std_logging.LogRecord) -> bool:
  """A record of the libraries whose tracebacks are not for the console."""
  return record.name == 'asyncio' or f'{os.sep}orbax{os.sep}' in (
      record.pathname or ''
  )


@contextlib.contextmanager
def library_log(path: str):
  """Keeps orbax's and asyncio's log records in `path`, off the console.

  A failed asynchronous checkpoint makes orbax log the same traceback from
  several threads (hundreds of lines around the one line that says what
  happened); they are kept for whoever debugs it. The file is created only
  when a record comes.
  """
  handler = std_logging.FileHandler(path, delay=True)
  handler.setLevel(std_logging.WARNING)
  handler.addFilter(_is_library_record)
  handler.setFormatter(
      std_logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s')
  )
  root = std_logging.getLogger()
  console = list(root.handlers)
  hide = lambda record: not _is_library_record(record)
  for other in console:
    other.addFilter(hide)
  root.addHandler(handler)
  try:
    yield
  finally:
    root.removeHandler(handler)
    handler.close()
    for other in console:
      other.removeFilter(hide)


def reader_library_log() -> str:
  """Where a command that must not write into a workdir keeps library logs."""
  import tempfile  # pylint: disable=g-import-not-at-top

  return os.path.join(
      tempfile.gettempdir(), f'catgan_jax-{os.getpid()}-library.log'
  )


def _parse_absl_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parsing, with every parse error as one line and exit 2."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  try:
    args = flags.FLAGS(list(argv))
    _check_config_flags(flags.FLAGS)
    return args
  except flags.Error as e:
    fail(_flag_error_line(str(e)) or type(e).__name__)
  except UserError as e:
    fail(str(e))
  # config_flags reports a bad config file or override as whatever its
  # loader raised (AttributeError for an unknown field, OSError for a missing
  # file, ...); every one of them is the user's argument.
  except Exception as e:  # pylint: disable=broad-except
    fail(_config_file_problem(flags.FLAGS, argv) or _describe_flag_error(e))


def _nonempty_lines(text: str) -> list[str]:
  return [line.strip() for line in text.splitlines() if line.strip()]


def _flag_error_line(text: str) -> str:
  """The first line of a flag error, and its cause if a traceback follows.

  A config file's get_config(arg) that raises comes back as 'Error whilst
  parsing config file:' and the traceback, whose last line is the reason.
  """
  lines = _nonempty_lines(text)
  if len(lines) > 1 and lines[1].startswith('Traceback'):
    return f'{lines[0]} {lines[-1]}'
  return lines[0] if lines else ''


def _config_file_flags(flag_values) -> list[str]:
  """The names of the flags that take a config file (`--config`)."""
  from ml_collections.config_flags import config_flags  # pylint: disable=g-import-not-at-top

  return [
      name
      for name in flag_values
      if isinstance(flag_values[name].parser, config_flags.ConfigFileFlagParser)
  ]


def _config_file_problem(flag_values, argv: Sequence[str]) -> str:
  """What is wrong with a config file itself ('' if nothing).

  A file without `get_config`, or whose `get_config` returns something
  other than a config, fails inside ml_collections with an AttributeError
  that would read as an unknown field.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top

  for name in _config_file_flags(flag_values):
    prefix = f'--{name}='
    paths = [a[len(prefix) :] for a in argv if a.startswith(prefix)]
    if not paths:
      continue
    file = paths[-1].partition(':')[0]
    try:
      config = flag_values[name].parser.parse(paths[-1])
    except AttributeError as e:
      if 'get_config' in str(e):
        return f'{prefix}{paths[-1]}: {file} defines no get_config()'
      continue
    except Exception:  # pylint: disable=broad-except
      continue  # The flag's own error says it.
    if not isinstance(config, ml_collections.ConfigDict):
      return (
          f'{prefix}{paths[-1]}: get_config() returned '
          f'{type(config).__name__}, not an ml_collections.ConfigDict'
      )
  return ''


def _check_config_flags(flag_values) -> None:
  """Raises the error a config file flag deferred (ml_collections does)."""
  import ml_collections  # pylint: disable=g-import-not-at-top

  for name in _config_file_flags(flag_values):
    value = flag_values[name].value
    if not isinstance(value, (ml_collections.ConfigDict, type(None))) and (
        type(value).__name__ != '_ErrorConfig'
    ):
      path = flag_values[name].serialize().partition('=')[2]
      raise UserError(
          f'--{name}={path}: get_config() returned '
          f'{type(value).__name__}, not an ml_collections.ConfigDict'
      )
    if type(value).__name__ != '_ErrorConfig':
      continue
    error = vars(value).get('_error')
    if error is not None:
      path = flag_values[name].serialize().partition('=')[2]
      # The last line of the loader's traceback says what went wrong.
      reason = (_nonempty_lines(str(error)) or [''])[-1]
      raise UserError(
          f'--{name}={path}: cannot load the config file ' f'({reason})'
      )


def _describe_flag_error(e: Exception) -> str:
  text = ' '.join(str(e).split()).strip('"\'')
  if isinstance(e, (AttributeError, KeyError)):
    field = text.strip('"\'')
    return (
        f'unknown config field {field!r} (every field is listed in '
        'configs/default.py)'
    )
  return f'bad flag value: {type(e).__name__}: {text}'


class ArgumentParser(argparse.ArgumentParser):
  """argparse for the data tools: a usage mistake is the one line, exit 2."""

  def error(self, message: str) -> NoReturn:
    fail(f'{message} (see --help)')


@contextlib.contextmanager
def user_errors():
  """Turns a `UserError` raised inside into the one line and exit 2."""
  try:
    yield
  except UserError as e:
    code = report(str(e))
    if isinstance(e, ResourceError):
      _leave_waiting_threads(code)
    sys.exit(code)


def _leave_waiting_threads(code: int) -> None:
  """Exits now if threads still wait on a write the machine refused.

  orbax's writer threads of a failed asynchronous checkpoint wait for a
  signal that never comes (for orbax's 300 s coordination timeout); a
  normal exit would wait for them.
  """
  waiting = [
      t
      for t in threading.enumerate()
      if t is not threading.current_thread() and not t.daemon and t.is_alive()
  ]
  if waiting:
    std_logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access


def run(
    main: Callable[[list[str]], None], uses_tensorflow: bool = True
) -> None:
  """`absl.app.run(main)` with the shared error handling and quiet logs.

  Args:
    main: the program, as for absl.
    uses_tensorflow: whether the program imports TensorFlow (then imported
      up front, muted); `plots` does not and starts without it.
  """
  from absl import app  # pylint: disable=g-import-not-at-top

  def guarded(argv):
    if len(argv) > 1:
      fail(f'unexpected arguments: {" ".join(argv[1:])} (see --help)')
    quiet_libraries(mute_tensorflow=uses_tensorflow)
    with user_errors():
      main(argv)

  app.run(guarded, flags_parser=_parse_absl_flags)
