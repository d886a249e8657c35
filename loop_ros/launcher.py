"""The package's own launcher, for pip venvs where ``ros2 launch`` does not exist.

It starts the graphs of :mod:`loop_ros.graph` (the same description the ``launch/*.launch.py``
files use) as one process per node::

    python -m loop_ros.launcher rccar robots:=2 real_time_factor:=2.0
    python -m loop_ros.launcher mujoco env:=HalfCheetah-v5 --print     # show the commands only
    python -m loop_ros.launcher rccar --help                          # declared arguments
    loop-ros launch rccar ...                                         # same, through the CLI

Each node runs as ``<python> -m <module> --ros-args -r __node:=<name> -r __ns:=<ns>
--params-file <yaml> --params-file <inline.yaml> -r <from>:=<to> --log-level <level>`` in its own
process group, with its output prefixed ``[<namespace>/<name>]``. The graph's inline parameters go
into a temporary params file keyed by the node's full name, as launch_ros does (a ``-p`` override
would lose against the ``/**/<node>`` sections of the packaged files). Every child gets
``ROS_AUTOMATIC_DISCOVERY_RANGE`` from the ``discovery_range`` argument (default ``LOCALHOST``:
DDS discovery stays on this machine) and an ``AMENT_PREFIX_PATH`` that includes ``sys.prefix``.

Shutdown (Ctrl-C, SIGTERM, or a *required* node exiting): SIGINT to every node, SIGTERM after
``--sigint-timeout`` seconds, SIGKILL after ``--sigterm-timeout`` more; a second Ctrl-C escalates
at once. The exit code is the first failing node's (128 + signal for a node killed by a signal),
0 when every node exits cleanly. A node whose spec has ``respawn`` (``respawn:=true``) and is not
required is started again ``respawn_delay_s`` after it exits, until a shutdown begins.
"""
from __future__ import annotations

import os
from pathlib import Path
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, IO, Sequence

import yaml

from loop_ros.graph import GRAPHS
from loop_ros.graph import GraphDescription
from loop_ros.graph import GraphError
from loop_ros.graph import NodeSpec

PROG = 'python -m loop_ros.launcher'
SIGINT_TIMEOUT_S = 5.0
SIGTERM_TIMEOUT_S = 5.0
_POLL_S = 0.05


LAUNCHER_PID_ENV = 'LOOP_ROS_LAUNCHER_PID'
"""Set in each node's environment to the launcher's pid: a node whose launcher is gone stops
(``loop_ros.ros.runner.watch_launcher``)."""


class LauncherError(RuntimeError):
    """The graph cannot be started (bad arguments, missing files)."""


# --- locating files -----------------------------------------------------------------------------

def source_root() -> Path | None:
    """The repo root when this module runs from a source checkout (package.xml next to it)."""
    root = Path(__file__).resolve().parent.parent
    if (root / 'package.xml').is_file() and (root / 'config').is_dir():
        return root
    return None


def find_share_dir() -> str:
    """Where ``config/`` and ``launch/`` live.

    A source checkout first (so edits to ``config/*.yaml`` take effect at once, like ``.py``
    edits), then the ament index (``<prefix>/share/loop_ros``, with ``sys.prefix`` added to
    ``AMENT_PREFIX_PATH``), then ``sys.prefix/share/loop_ros``.
    """
    root = source_root()
    if root is not None:
        return str(root)
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    for prefix in prefixes:
        marker = Path(prefix, 'share', 'ament_index', 'resource_index', 'packages', 'loop_ros')
        if marker.exists():
            return str(Path(prefix, 'share', 'loop_ros'))
    fallback = Path(sys.prefix, 'share', 'loop_ros')
    if fallback.is_dir():
        return str(fallback)
    raise LauncherError('cannot find the loop_ros share directory (config/): install the '
                        'package (pip install . / colcon build) or run from the source tree')


# --- commands -----------------------------------------------------------------------------------

def inline_params_yaml(spec: NodeSpec) -> str:
    """The inline parameters of ``spec`` as a params file keyed by the node's full name.

    launch_ros does the same with dict parameters. A file is used, not ``-p``: rcl applies ``-p``
    values (wildcard ``/**``) before node-specific file sections, so ``-p`` would lose against
    the ``/**/<node>`` sections of the packaged params files.
    """
    body = {spec.fully_qualified_name: {'ros__parameters': dict(spec.parameters)}}
    return yaml.safe_dump(body, default_flow_style=False, sort_keys=False)


def write_inline_params(spec: NodeSpec, directory: str | Path) -> str | None:
    """Write :func:`inline_params_yaml` into ``directory``; None when there is nothing."""
    if not spec.parameters:
        return None
    path = Path(directory, spec.label.replace('/', '__') + '.yaml')
    path.write_text(inline_params_yaml(spec))
    return str(path)


def command(spec: NodeSpec, inline_file: str | None = None,
            python: str = sys.executable) -> list[str]:
    """The argv that runs ``spec``; ``inline_file`` holds its inline parameters (applied last)."""
    cmd = [python, '-m', spec.module, '--ros-args',
           '-r', f'__node:={spec.name}', '-r', f'__ns:={spec.namespace}']
    for path in [*spec.params_files, *([inline_file] if inline_file else [])]:
        cmd += ['--params-file', path]
    for src, dst in spec.remappings:
        cmd += ['-r', f'{src}:={dst}']
    cmd += ['--log-level', spec.log_level]
    return cmd


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every node process."""
    env = dict(os.environ if base is None else base)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    prefixes = [p for p in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        prefixes.append(sys.prefix)
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(prefixes)
    root = source_root()
    if root is not None:  # children import the same loop_ros sources as this launcher
        paths = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
        if str(root) not in paths:
            env['PYTHONPATH'] = os.pathsep.join([str(root), *paths])
    if sys.stdout.isatty():
        env.setdefault('RCUTILS_COLORIZED_OUTPUT', '1')
    return env


# --- running ------------------------------------------------------------------------------------

class _Proc:
    def __init__(self, spec: NodeSpec, cmd: list[str]) -> None:
        self.spec = spec
        self.cmd = cmd
        self.popen: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None
        self.returncode: int | None = None
        self.restart_at: float | None = None


class Launcher:
    """Runs node specs as processes until they exit or a shutdown is requested."""

    def __init__(self, specs: Sequence[NodeSpec], out: IO[str] | None = None,
                 sigint_timeout: float = SIGINT_TIMEOUT_S,
                 sigterm_timeout: float = SIGTERM_TIMEOUT_S) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix='loop_ros_launch_')
        self.procs = [_Proc(s, command(s, write_inline_params(s, self._tmp.name)))
                      for s in specs]
        self.out = out or sys.stdout
        self.sigint_timeout = sigint_timeout
        self.sigterm_timeout = sigterm_timeout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._escalate = False
        self._env = child_env()

    def log(self, text: str) -> None:
        """A line of the launcher's own, prefixed ``[launcher]``."""
        self._write(f'[launcher] {text}\n')

    def _write(self, text: str) -> None:
        with self._lock:
            try:
                self.out.write(text)
                self.out.flush()
            except (OSError, ValueError):
                pass

    def _pump(self, proc: _Proc) -> None:
        assert proc.popen is not None and proc.popen.stdout is not None
        prefix = f'[{proc.spec.label}] '
        for raw in iter(proc.popen.stdout.readline, b''):
            self._write(prefix + raw.decode('utf-8', 'replace').rstrip('\n') + '\n')
        proc.popen.stdout.close()

    def _start(self, proc: _Proc) -> None:
        env = {**self._env, **proc.spec.env, LAUNCHER_PID_ENV: str(os.getpid())}
        proc.popen = subprocess.Popen(proc.cmd, env=env,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, process_group=0)
        proc.returncode = None
        proc.restart_at = None
        proc.reader = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        proc.reader.start()
        self.log(f'started {proc.spec.label} (pid {proc.popen.pid}): '
                 f'{proc.spec.module}')

    def request_shutdown(self, signum: int | None = None) -> None:
        """Begin a clean shutdown (a repeated request escalates to SIGTERM/SIGKILL)."""
        if self._stop.is_set():
            self._escalate = True
        self._stop.set()

    def _signal_all(self, sig: int) -> None:
        for proc in self.procs:
            if proc.popen is not None and proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def run(self) -> int:
        """Start every node, supervise, shut down; the exit code (see the module docstring)."""
        first_failure: int | None = None
        shutdown_at: float | None = None
        sent = 0  # 0: nothing, 1: SIGINT, 2: SIGTERM, 3: SIGKILL
        try:
            for proc in self.procs:
                self._start(proc)
            while True:
                now = time.monotonic()
                for proc in self.procs:
                    if proc.popen is None or proc.returncode is not None:
                        if (proc.restart_at is not None and shutdown_at is None
                                and now >= proc.restart_at):
                            self._start(proc)
                        continue
                    code = proc.popen.poll()
                    if code is None:
                        continue
                    proc.returncode = code
                    clean = code == 0 or (shutdown_at is not None and sent == 1
                                          and code == -signal.SIGINT)
                    self.log(f'{proc.spec.label} exited with code {code}'
                             + ('' if clean else ' (failure)'))
                    if not clean and first_failure is None:
                        first_failure = 128 - code if code < 0 else code
                    if shutdown_at is None:
                        if proc.spec.required:
                            self.log(f'required node {proc.spec.label} exited: shutting down')
                            self._stop.set()
                        elif proc.spec.respawn:
                            proc.restart_at = now + proc.spec.respawn_delay_s
                if self._stop.is_set() and shutdown_at is None:
                    shutdown_at = now
                if shutdown_at is not None:
                    elapsed = now - shutdown_at
                    if sent < 1:
                        self._signal_all(signal.SIGINT)
                        sent = 1
                    elif sent < 2 and (elapsed > self.sigint_timeout or self._escalate):
                        self.log('nodes still running after SIGINT: sending SIGTERM')
                        self._signal_all(signal.SIGTERM)
                        sent, self._escalate = 2, False
                    elif sent < 3 and (elapsed > self.sigint_timeout + self.sigterm_timeout
                                       or self._escalate):
                        self.log('nodes still running after SIGTERM: sending SIGKILL')
                        self._signal_all(signal.SIGKILL)
                        sent = 3
                running = [p for p in self.procs if p.popen is not None and p.returncode is None]
                pending = [p for p in self.procs if p.restart_at is not None]
                if not running and (not pending or shutdown_at is not None):
                    break
                if shutdown_at is None:
                    self._stop.wait(_POLL_S)
                else:
                    time.sleep(_POLL_S)
        finally:
            self._signal_all(signal.SIGKILL)  # only reached with live nodes on an exception
            for proc in self.procs:
                if proc.popen is not None:
                    proc.popen.wait()
                if proc.reader is not None:
                    proc.reader.join(timeout=2.0)
            self._tmp.cleanup()
        return first_failure or 0


# --- command line -------------------------------------------------------------------------------

def usage(graph: GraphDescription | None = None) -> str:
    """The --help text: usage, graphs, and the declared arguments of one or all graphs."""
    lines = [f'usage: {PROG} GRAPH [name:=value ...] [--print] [--sigint-timeout S] '
             '[--sigterm-timeout S] [--help]', '',
             'Start a loop_ros graph as one process per node (the same graphs as '
             'launch/<GRAPH>.launch.py).', '', 'graphs:']
    lines += [f'  {g.name:<8} {g.description}' for g in GRAPHS.values()]
    lines += ['', 'options:',
              '  --print, --dry-run    print the node commands and exit',
              f'  --sigint-timeout S    seconds to wait after SIGINT (default {SIGINT_TIMEOUT_S})',
              f'  --sigterm-timeout S   seconds to wait after SIGTERM (default '
              f'{SIGTERM_TIMEOUT_S})',
              '  -h, --help            show this help']
    for g in ([graph] if graph else GRAPHS.values()):
        lines += ['', f"arguments of '{g.name}' (name:=value):"]
        for a in g.arguments:
            extra = f' (one of: {", ".join(a.choices)})' if a.choices else ''
            lines.append(f"  {a.name + ':=' + repr(a.default):<40} {a.description}{extra}")
    return '\n'.join(lines) + '\n'


def _parse(argv: Sequence[str]) -> tuple[GraphDescription | None, dict[str, str], dict[str, Any]]:
    opts: dict[str, Any] = {'help': False, 'print': False, 'sigint_timeout': SIGINT_TIMEOUT_S,
                            'sigterm_timeout': SIGTERM_TIMEOUT_S}
    graph: GraphDescription | None = None
    given: dict[str, str] = {}
    items = list(argv)
    while items:
        item = items.pop(0)
        if item in ('-h', '--help'):
            opts['help'] = True
        elif item in ('--print', '--dry-run'):
            opts['print'] = True
        elif item.split('=')[0] in ('--sigint-timeout', '--sigterm-timeout'):
            key, _, value = item.partition('=')
            if not value:
                if not items:
                    raise LauncherError(f'{key} needs a value in seconds')
                value = items.pop(0)
            try:
                opts[key[2:].replace('-', '_')] = max(0.0, float(value))
            except ValueError:
                raise LauncherError(f'{key}: expected seconds, got {value!r}') from None
        elif ':=' in item:
            name, _, value = item.partition(':=')
            given[name] = value
        elif item.startswith('-'):
            raise LauncherError(f'unknown option {item!r} (see --help)')
        elif graph is None:
            if item not in GRAPHS:
                raise LauncherError(f'unknown graph {item!r}; known: {", ".join(GRAPHS)}')
            graph = GRAPHS[item]
        else:
            raise LauncherError(f'unexpected argument {item!r}: launch arguments are '
                                'name:=value (see --help)')
    return graph, given, opts


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``main(['rccar', 'robots:=2'])``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        graph, given, opts = _parse(argv)
        if opts['help']:
            sys.stdout.write(usage(graph))
            return 0
        if graph is None:
            raise LauncherError('no graph given; one of: ' + ', '.join(GRAPHS)
                                + ' (see --help)')
        specs = graph.nodes(given, find_share_dir())
        for path in sorted({p for s in specs for p in s.params_files}):
            if not Path(path).is_file():
                raise LauncherError(f'params file not found: {path}')
    except (GraphError, LauncherError) as exc:
        sys.stderr.write(f'{PROG}: error: {exc}\n')
        return 2
    if opts['print']:
        directory = tempfile.mkdtemp(prefix='loop_ros_launch_')
        discovery = {s.env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST') for s in specs}
        sys.stdout.write(f'# env: ROS_AUTOMATIC_DISCOVERY_RANGE={",".join(sorted(discovery))} '
                         f'AMENT_PREFIX_PATH={child_env()["AMENT_PREFIX_PATH"]}\n'
                         f'# inline parameter files are kept in {directory}\n')
        for spec in specs:
            inline = write_inline_params(spec, directory)
            role = ' (required)' if spec.required else (
                f' (respawn after {spec.respawn_delay_s:g} s)' if spec.respawn else '')
            sys.stdout.write(f'# {spec.label}{role}: '
                             f'{dict(spec.parameters)}\n'
                             f'{shlex.join(command(spec, inline))}\n')
        return 0
    if not specs:
        sys.stderr.write(f'{PROG}: error: no nodes selected\n')
        return 2
    launcher = Launcher(specs, sigint_timeout=opts['sigint_timeout'],
                        sigterm_timeout=opts['sigterm_timeout'])
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda s, f: launcher.request_shutdown(s))
    try:
        return launcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == '__main__':
    sys.exit(main())
