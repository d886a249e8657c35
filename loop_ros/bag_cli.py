"""``loop-ros bag``: rosbag2 bags without ``ros2 bag`` (``docs/bags.md``).

* ``loop-ros bag info PATH [PATH ...]``: files, storage, duration, topics with types and counts,
  custom data (sqlite3 and mcap; also a bag whose recorder was killed);
* ``loop-ros bag record OUT [--topics T ...]``: records the graph's Transition topics (and the
  listed ones) until Ctrl-C (the ``recorder`` node, in this process);
* ``loop-ros bag convert IN [IN ...] --observation-topic /odom --action-topic /cmd_vel --rate HZ
  --out OUT``: a robot's own recording -> a Transition bag (:mod:`loop_ros.io.convert`).

Errors (a bad bag, a missing topic, an output that exists, ...) print ``loop-ros: error: ...``
and exit with code 2, leaving no partial output.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
import sys
from typing import Any

from loop_ros.core.config import ConfigError
from loop_ros.core.config import from_dict
from loop_ros.core.config import to_dict
from loop_ros.io.bags import BagError


def _convert_options(parser: argparse.ArgumentParser) -> None:
    """One option per ConvertConfig field (``--observation-fields x y sin_yaw ...``)."""
    from loop_ros.io.convert import ConvertConfig
    aliases = {'rate_hz': ['--rate'], 'command_timeout_s': ['--command-timeout']}
    for f in dataclasses.fields(ConvertConfig):
        flags = [f'--{f.name.replace("_", "-")}', *aliases.get(f.name, [])]
        meta = f.metadata
        rng = meta.get('range')
        extra = ''
        if rng is not None and not isinstance(f.default, str):
            extra = f' [{rng[0]:g}, {rng[1]:g}]'
        default = ' '.join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        kwargs: dict[str, Any] = {'dest': f.name, 'default': argparse.SUPPRESS,
                                  'help': f"{meta['description']} (default: {default!s}"
                                          f'{extra})'}
        if isinstance(f.default, tuple):
            item = float if f.name.startswith('action_') and f.name != 'action_fields' else str
            kwargs.update(nargs='*' if not f.default else '+', type=item)
        elif isinstance(f.default, str) and rng:
            kwargs.update(choices=list(rng))
        else:
            kwargs.update(type=type(f.default))
        parser.add_argument(*flags, **kwargs)


def add_bag_parser(sub: Any) -> None:
    """Register ``loop-ros bag`` and its verbs on the CLI's subparsers."""
    bag = sub.add_parser('bag', help='rosbag2 bags: info, record, convert (docs/bags.md)',
                         description=__doc__.split('\n\n')[1].strip())
    verbs = bag.add_subparsers(dest='bag_command', required=True)

    info = verbs.add_parser('info', help='what is in a bag (like ros2 bag info)')
    info.add_argument('paths', nargs='+', metavar='PATH', help='bag directory, .db3 or .mcap')
    info.add_argument('--json', action='store_true', help='machine-readable output')

    record = verbs.add_parser(
        'record', help="record the graph's Transition topics (and --topics) to a new bag",
        description='Record every loop_ros/msg/Transition topic on the graph (and the listed '
        'topics) to a new rosbag2 bag until Ctrl-C. sqlite3 storage commits every '
        '--flush-period seconds, so a recorder killed with SIGKILL leaves a readable bag up to '
        'its last commit.')
    record.add_argument('out', metavar='OUT', help='bag directory to create')
    record.add_argument('--topics', nargs='+', default=[], metavar='TOPIC',
                        help='more topics to record (absolute names, e.g. /odom /cmd_vel)')
    record.add_argument('--storage', choices=['sqlite3', 'mcap'], default='sqlite3',
                        help='storage plugin (mcap is complete only after a clean stop)')
    record.add_argument('--flush-period', type=float, default=1.0, metavar='S',
                        help='sqlite3 commit period in seconds')
    record.add_argument('--duration', type=float, default=0.0, metavar='S',
                        help='stop after this many seconds (0: until Ctrl-C)')
    record.add_argument('--no-transitions', action='store_true',
                        help='record only --topics, not every Transition topic')
    record.add_argument('--use-sim-time', action='store_true',
                        help='log messages at the /clock time instead of the system time')

    convert = verbs.add_parser(
        'convert', help="a robot's recording (Odometry/JointState + Twist) -> Transition bag",
        description='Sample a recording of a robot state topic (nav_msgs/Odometry or '
        'sensor_msgs/JointState) and a command topic (geometry_msgs/Twist or TwistStamped) at '
        'the control rate into loop_ros/msg/Transition messages; see docs/bags.md for the '
        'alignment rule and the default mapping.')
    convert.add_argument('inputs', nargs='+', metavar='IN', help='input bag(s) of one robot')
    convert.add_argument('--out', required=True, help='Transition bag to create')
    convert.add_argument('--config', help='YAML file with the settings below (options win)')
    convert.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    _convert_options(convert)


def cmd_info(args: argparse.Namespace) -> int:
    from loop_ros.io.bags import bag_info
    infos = [bag_info(p) for p in args.paths]   # all or nothing: a bad bag is an error
    if args.json:
        out = [{'path': str(i.path), 'storage': i.storage, 'files': list(i.files),
                'size_bytes': i.size_bytes, 'message_count': i.message_count,
                'start_ns': i.start_ns, 'end_ns': i.end_ns, 'duration_ns': i.duration_ns,
                'topics': [dataclasses.asdict(t) for t in i.topics],
                'custom_data': i.custom_data, 'recovered': i.recovered} for i in infos]
        print(json.dumps(out if len(out) > 1 else out[0], indent=2))
        return 0
    for k, i in enumerate(infos):
        if len(infos) > 1:
            print(('\n' if k else '') + f'{i.path}:')
        print(i)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        raise BagError(f'{out} exists already: record creates a new bag')
    if not args.flush_period > 0:
        raise BagError(f'--flush-period must be > 0, got {args.flush_period}')
    from loop_ros.nodes import recorder_node
    topics = ['transition', *args.topics] if not args.no_transitions else list(args.topics)
    if not topics:
        raise BagError('nothing to record: give --topics with --no-transitions')
    ros_args = ['--ros-args', '-p', f'output:={out}', '-p', f'storage:={args.storage}',
                '-p', f'topics:={json.dumps(topics)}',
                '-p', f'all_transitions:={str(not args.no_transitions).lower()}',
                '-p', f'flush_period_s:={float(args.flush_period)}',
                '-p', f'max_duration_s:={float(args.duration)}',
                '-p', f'use_sim_time:={str(args.use_sim_time).lower()}']
    code = recorder_node.main(ros_args)
    return 0 if code == 0 else 2


def cmd_convert(args: argparse.Namespace) -> int:
    from loop_ros.io.convert import convert_bags
    from loop_ros.io.convert import ConvertConfig
    data: dict[str, Any] = {}
    if args.config:
        import yaml
        try:
            loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f'cannot read {args.config}: {exc}') from None
        if not isinstance(loaded, dict):
            raise ConfigError(f'{args.config}: expected a mapping of convert settings')
        data.update(loaded)
    names = {f.name for f in dataclasses.fields(ConvertConfig)}
    data.update({k: v for k, v in vars(args).items() if k in names})
    cfg = from_dict(ConvertConfig, data, where=args.config or 'bag convert')
    result = convert_bags(args.inputs, args.out, cfg, overwrite=args.overwrite)
    s = result.stats
    labels = (f"rewards from task {cfg.task}" if result.reward == 'task'
              else "rewards left to the learner's task (loop_ros.reward: unset)")
    print(f"wrote {s['transitions']} transitions ({s['episodes']} episodes, obs "
          f'{result.data.obs_dim}, action {result.data.act_dim}) to {result.path}; {labels}; '
          f"gaps cut {s['gaps_cut']}, commands clipped {s['commands_clipped']}, timed out "
          f"{s['commands_timed_out']}")
    if s['commands_clipped']:
        print(f"note: {s['commands_clipped']} commands were outside --action-low/--action-high "
              f"and were clipped ({to_dict(cfg)['action_low']} .. "
              f"{to_dict(cfg)['action_high']})", file=sys.stderr)
    return 0


def run_bag(args: argparse.Namespace) -> int:
    """Dispatch ``loop-ros bag <verb>``; errors print ``loop-ros: error: ...`` and give 2."""
    try:
        if args.bag_command == 'info':
            return cmd_info(args)
        if args.bag_command == 'record':
            return cmd_record(args)
        if args.bag_command == 'convert':
            return cmd_convert(args)
    except (BagError, ConfigError) as exc:
        print(f'loop-ros: error: {exc}', file=sys.stderr)
        return 2
    return 2
