"""``loop-ros``: the command line of loop_ros.

Subcommands:

* ``loop-ros train``: standalone training on a gymnasium env, no ROS (every config field of
  ``loop_ros.core.config`` is an option: ``--arc.horizon 5``, ``--sac.lr 3e-4`` ...);
* ``loop-ros demo``: the main job on its embedded default (see README);
* ``loop-ros launch GRAPH [arg:=value ...]``: the package's own launcher (no ``ros2 launch``);
* ``loop-ros bag info|record|convert``: rosbag2 bags (docs/bags.md);
* ``loop-ros constraints``: send a running graph new planar constraints (docs/ros.md,
  "Constraints at run time"; no ``ros2 topic pub`` in a pip venv).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

from loop_ros.core.config import (ConfigError, LoopConfig, groups, iter_fields, merge_dict,
                                  replace, with_presets)
from loop_ros.core.checkpoint import CheckpointError
from loop_ros.envs import EnvError
from loop_ros.io import BagError

SHORTCUTS = {
    'env': None, 'algo': 'train.algo', 'steps': 'train.total_steps', 'seed': 'train.seed',
    'device': 'train.device',
}


def _field_type(f: dataclasses.Field) -> Any:
    default = f.default
    if isinstance(default, bool):
        return lambda s: {'true': True, '1': True, 'yes': True, 'false': False, '0': False,
                          'no': False}[s.lower()]
    if isinstance(default, tuple):
        return lambda s: tuple(int(x) for x in s.split(','))
    return type(default)


def add_config_options(parser: argparse.ArgumentParser,
                       config_groups: dict[str, type] | None = None) -> None:
    """One ``--<group>.<field>`` option per config field, documented from its metadata.

    ``config_groups`` (prefix -> dataclass) defaults to the groups of ``LoopConfig``.
    """
    for group_name, group_type in (config_groups or groups(LoopConfig)).items():
        section = parser.add_argument_group(f'{group_name} ({group_type.__name__})',
                                            group_type.__doc__.splitlines()[0])
        for f in iter_fields(group_type):
            rng = f.metadata.get('range')
            extra = ''
            if rng is not None:
                extra = f' choices: {", ".join(rng)}' if isinstance(rng[0], str) else \
                    f' range: [{rng[0]}, {rng[1]}]'
            default = ','.join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            section.add_argument(f'--{group_name}.{f.name}', dest=f'{group_name}.{f.name}',
                                 type=_field_type(f), default=argparse.SUPPRESS,
                                 metavar=type(f.default).__name__.upper(),
                                 help=f"{f.metadata['description']} (default: {default};{extra})")


def group_from_args(args: argparse.Namespace, prefix: str, cfg: Any) -> Any:
    """``cfg`` (a dataclass such as ``OfflineConfig``) with the ``--<prefix>.*`` options."""
    changes = {k.split('.', 1)[1]: v for k, v in vars(args).items()
               if k.startswith(prefix + '.')}
    return replace(cfg, **changes)


def config_from_args(args: argparse.Namespace, offline: bool = False) -> LoopConfig:
    """Defaults, with ``offline`` offline LOOP's presets, the env's task presets (and its
    offline ones), the config file (if any), then the options."""
    layered: dict[str, Any] = {}
    if offline:
        from loop_ros.core.agent import OFFLINE_PRESETS
        layered.update(OFFLINE_PRESETS)
    if getattr(args, 'env', None):
        from loop_ros.train import task_of
        task = task_of(args.env, warn=False)
        layered.update(task.hyperparameters)
        if offline:
            layered.update(task.offline_hyperparameters)
    cfg = with_presets(layered)
    if getattr(args, 'config', None):
        import yaml
        path = Path(args.config)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f'cannot read config file {path}: {exc}') from exc
        if not isinstance(data, dict):
            raise ConfigError(f'{path}: expected a mapping of groups (sac, ensemble, arc, train)')
        cfg = merge_dict(cfg, data, where=str(path))
    loop_groups = groups(LoopConfig)
    changes = {k: v for k, v in vars(args).items() if k.split('.')[0] in loop_groups}
    for short, dotted in SHORTCUTS.items():
        if dotted and getattr(args, short, None) is not None:
            changes[dotted] = getattr(args, short)
    return replace(cfg, **changes)


def add_eval_options(ev: argparse.ArgumentParser, checkpoint_help: str) -> None:
    """The options of ``eval`` and ``eval-offline``: checkpoints, episodes, resets, arc.*."""
    ev.add_argument('--checkpoint', nargs='+', required=True, help=checkpoint_help)
    ev.add_argument('--episodes', type=int, default=10,
                    help='evaluation episodes per checkpoint and controller')
    ev.add_argument('--env', default=None, help="env id (default: the checkpoint's)")
    ev.add_argument('--out', default=None, help='output directory (default: next to the first '
                    'checkpoint)')
    ev.add_argument('--device', default='auto', help="'auto', 'cpu' or 'cuda'")
    ev.add_argument('--eval-seed-base', type=int, default=None,
                    help='first evaluation reset seed (default: loop_ros.offline.evaluation.'
                    'EVAL_SEED_BASE); tune on another base than the one you report')
    ev.add_argument('--threads', type=int, default=2, help='torch intra-op threads')
    add_config_options(ev, {'arc': groups(LoopConfig)['arc']})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='loop-ros', description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    train = sub.add_parser(
        'train', help='train an agent on a gymnasium env without ROS',
        description='Train LOOP (or a baseline) on a gymnasium env with a Box action space. '
        'Writes metrics.csv, episodes.csv, learning_curve.png, config.json and final.pt to --out.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument('--env', required=True,
                       help='gymnasium id, e.g. InvertedPendulum-v5, HalfCheetah-v5, '
                       'loop_ros/RCCarCircle-v0')
    train.add_argument('--algo', choices=['loop', 'sac', 'pets', 'loop-cem', 'loop-sarsa',
                                          'safe-loop', 'safe-pets'],
                       help='agent: LOOP (ARC + SAC), SAC alone, PETS-restricted (no value), '
                       'LOOP with CEM instead of ARC, LOOP with a SARSA critic, or safe LOOP / '
                       'safe PETS-restricted under the cost constraint arc.cost_limit (d0, 0.2 '
                       'unless set) (default: loop)')
    train.add_argument('--steps', type=int, help='environment steps (default: 5000)')
    train.add_argument('--seed', type=int, help='seed (default: 0)')
    train.add_argument('--device', help="'auto', 'cpu' or 'cuda' (default: auto)")
    train.add_argument('--out', default=None, help='output directory (default: runs/<env>-<algo>-'
                       '<seed>)')
    train.add_argument('--config', help='YAML file with groups sac/ensemble/arc/train')
    train.add_argument('--init', default=None, help='start from the actor, critic and ensemble '
                       "of this checkpoint (e.g. train-offline's final.pt); train.start_steps "
                       'then defaults to 0')
    train.add_argument('--threads', type=int, default=2, help='torch intra-op threads')
    train.add_argument('--no-progress', action='store_true', help='log lines instead of a bar')
    train.add_argument('--replay-bags', nargs='+', metavar='BAG', default=None,
                       help='Transition bags that fill the replay buffer before the first step: '
                       'they count toward start_steps and the model is retrained on them first '
                       '(docs/bags.md)')
    add_config_options(train)

    demo = sub.add_parser('demo', help='the main job on its embedded default (see README)')
    demo.add_argument('--minutes', type=float, default=None, help='stop after this long')
    demo.add_argument('--steps', type=int, default=None, help='environment steps')
    demo.add_argument('--out', default='runs/demo', help='output directory')

    sub.add_parser('params', help='print the parameter reference (docs/parameters.md)')

    constraints = sub.add_parser(
        'constraints', help='send planar constraints to the planner and sim bridge of a '
        'running graph (docs/ros.md)',
        description='Publish one loop_ros/Constraints message on <namespace>/constraints: it '
        'replaces the boundary and every keep-out zone of the planner (from its next tick) and '
        'the sim bridge (from its next step). Positions in metres in the task\'s world frame '
        '(the RC car: origin at the circle\'s centre); keep-out zones need an RC-car ...XY-v0 '
        'env. A node refusing the set logs the reason and keeps its constraints.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    constraints.add_argument('--namespace', default='', help="the robot's namespace "
                             "(robots:=N: '/robot0', ...)")
    constraints.add_argument('--boundary-radius', type=float, default=0.0,
                             help="boundary radius (m); 0: the task's own (RC car: 1.2 m)")
    constraints.add_argument('--circle', nargs=3, type=float, action='append', default=[],
                             metavar=('X', 'Y', 'RADIUS'), help='a keep-out circle (repeat)')
    constraints.add_argument('--polygon', action='append', default=[], metavar="'X,Y X,Y X,Y'",
                             help='a keep-out polygon, at least 3 vertices (repeat)')
    constraints.add_argument('--wait', type=float, default=5.0,
                             help='seconds to wait for a subscriber')

    from loop_ros.core.config import DatasetConfig, OfflineConfig
    dataset = sub.add_parser(
        'dataset', help='make a D4RL-style dataset bag by training SAC (medium, medium-replay)',
        description='Train SAC on ENV until its actor reaches the target return (a third of '
        "the expert's by default), then write Transition bags: 'medium' (rollouts of that "
        "policy) and/or 'medium-replay' (everything SAC collected until then). With one "
        '--kind, --out is the bag; with several, --out is a directory holding one bag per kind.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    dataset.add_argument('--env', required=True, help='gymnasium id, e.g. Hopper-v5')
    dataset.add_argument('--kind', nargs='+', choices=['medium', 'medium-replay'],
                         default=['medium'], help='dataset kind(s)')
    dataset.add_argument('--out', required=True, help='output bag (a directory)')
    dataset.add_argument('--seed', type=int, default=0, help='seed of SAC, env and rollouts')
    dataset.add_argument('--storage', choices=['mcap', 'sqlite3'], default='mcap')
    dataset.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    dataset.add_argument('--threads', type=int, default=2, help='torch intra-op threads')
    add_config_options(dataset, {'dataset': DatasetConfig, 'sac': groups(LoopConfig)['sac'],
                                 'train': groups(LoopConfig)['train']})

    offline = sub.add_parser(
        'train-offline', help='train the ensemble and an offline policy (CRR) from bags',
        description='Offline LOOP, step 1: fit the probabilistic ensemble and the offline base '
        'policy and critic on the Transition bag(s). Writes final.pt (loadable by the planner '
        'node, eval-offline and train --init) and metrics.json (the ensemble\'s held-out '
        "one-step error next to the error of predicting 'no change').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    offline.add_argument('--bag', nargs='+', required=True, help='Transition bag(s)')
    offline.add_argument('--algo', dest='base_algo', choices=['crr'], default='crr',
                         help='offline base algorithm')
    offline.add_argument('--env', default=None, help="task/env id (default: the dataset bag's "
                         'metadata)')
    offline.add_argument('--out', default=None, help='output directory (default: runs/offline-'
                         '<bag name>-<seed>)')
    offline.add_argument('--seed', type=int, default=None, help='seed (default: 0)')
    offline.add_argument('--config', help='YAML file with groups sac/ensemble/arc/train')
    offline.add_argument('--threads', type=int, default=2, help='torch intra-op threads')
    offline.add_argument('--no-progress', action='store_true', help='log lines instead of a bar')
    add_config_options(offline, {'offline': OfflineConfig, **groups(LoopConfig)})

    add_eval_options(sub.add_parser(
        'eval-offline', help="base policy vs LOOP on it, as the paper's Table 1",
        description='Run the offline base policy and offline LOOP (pessimistic ARC around it) '
        'on the same evaluation resets, which no dataset or training used; print and write the '
        'table (eval.json, table.md). Several checkpoints (training seeds) are averaged per '
        'dataset.', formatter_class=argparse.ArgumentDefaultsHelpFormatter),
        'final.pt of train-offline')
    add_eval_options(sub.add_parser(
        'eval', help='evaluate checkpoints of loop-ros train on fresh resets',
        description='Run the actor alone and the planner (ARC in eval mode) of each checkpoint '
        '(final.pt, or checkpoints/step_<N>.pt written with --train.checkpoint_every) on the '
        'same evaluation resets, which no training run used; print one row per checkpoint and '
        'write eval.json and table.md.', formatter_class=argparse.ArgumentDefaultsHelpFormatter),
        "checkpoints of loop-ros train (also train-offline's final.pt)")

    launch = sub.add_parser('launch', help="start a graph with the own launcher: 'loop-ros "
                            "launch rccar robots:=2' (see docs/ros.md)", add_help=False)
    launch.add_argument('rest', nargs=argparse.REMAINDER)

    from loop_ros.bag_cli import add_bag_parser
    add_bag_parser(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from loop_ros.train import torch_threads, train
    cfg = config_from_args(args)
    out = args.out or f"runs/{args.env.replace('/', '_')}-{cfg.train.algo}-{cfg.train.seed}"
    torch_threads(args.threads)
    from loop_ros.train import task_of
    presets = task_of(args.env, warn=False).hyperparameters
    used = [f'{k}={v}' for k, v in presets.items()
            if getattr(getattr(cfg, k.split('.')[0]), k.split('.')[1]) == v]
    if used:
        print(f"{args.env} presets in effect: {', '.join(used)} (an option or --config "
              'overrides them)')
    if args.init and cfg.train.start_steps < 0:
        cfg = replace(cfg, **{'train.start_steps': 0})   # a trained policy needs no random warm-up
    result = train(args.env, cfg, out, progress=not args.no_progress,
                   replay_bags=args.replay_bags or (), init=args.init)
    ev = result.final_eval
    print(f'done: {result.env_steps} steps in {result.wall_s:.0f} s; eval return: planner '
          f'{ev.planner_return:.1f}, actor {ev.actor_return:.1f}; plan median '
          f'{result.plan_ms_median:.1f} ms; outputs in {result.out_dir}')
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from loop_ros.core.config import DatasetConfig
    from loop_ros.offline.dataset import make_dataset, write_dataset
    from loop_ros.train import torch_threads
    torch_threads(args.threads)
    cfg = replace(LoopConfig(), **{k: v for k, v in vars(args).items()
                                   if k.split('.')[0] in ('sac', 'train')})
    dcfg = group_from_args(args, 'dataset', DatasetConfig())
    out = Path(args.out)
    targets = {kind: out if len(args.kind) == 1 else out / kind for kind in args.kind}
    for path in targets.values():
        if path.exists() and not args.overwrite:
            raise ConfigError(f'{path} exists (use --overwrite to replace it)')
    datasets = make_dataset(args.env, tuple(args.kind), cfg, dcfg, args.seed)
    for kind, data in datasets.items():
        path = write_dataset(data, targets[kind], storage=args.storage, overwrite=args.overwrite)
        meta = data.metadata
        print(f"wrote {path}: {kind}, {len(data)} transitions, {meta['loop_ros.dataset.episodes']}"
              f" episodes, mean return {meta['loop_ros.dataset.return_mean']}")
    return 0


def cmd_train_offline(args: argparse.Namespace) -> int:
    from loop_ros.core.config import OfflineConfig
    from loop_ros.offline.training import train_offline
    from loop_ros.train import torch_threads
    torch_threads(args.threads)
    env = args.env
    if env is None:
        from loop_ros.offline.training import env_id_of_bags
        env = env_id_of_bags(args.bag)
    args.env = env
    args.algo = None
    seed = args.seed
    args.seed = None
    cfg = config_from_args(args, offline=True)
    ocfg = group_from_args(args, 'offline', OfflineConfig())
    if seed is not None:
        ocfg = replace(ocfg, seed=seed)
    out = args.out or f'runs/offline-{Path(args.bag[0]).name}-{ocfg.seed}'
    result = train_offline(args.bag, cfg, ocfg, out, env_id=env, progress=not args.no_progress)
    ens = result.metrics['ensemble']
    print(f"done: {result.checkpoint}; ensemble held-out one-step MSE {ens['heldout_obs_mse']:.4g}"
          f" ('no change': {ens['no_change_obs_mse']:.4g})")
    return 0


def cmd_eval_offline(args: argparse.Namespace, offline: bool = True) -> int:
    """``eval-offline`` (offline LOOP, Table 1) or, with ``offline=False``, ``eval``."""
    from loop_ros.offline.evaluation import EVAL_SEED_BASE, evaluate_checkpoint, write_report
    from loop_ros.train import torch_threads
    torch_threads(args.threads)
    overrides = {k: v for k, v in vars(args).items() if k.startswith('arc.')}
    base = EVAL_SEED_BASE if args.eval_seed_base is None else args.eval_seed_base
    algo = 'loop-offline' if offline else None
    evals = [evaluate_checkpoint(ck, args.episodes, overrides, args.env, args.device,
                                 eval_seed_base=base, algo=algo) for ck in args.checkpoint]
    out = args.out or Path(args.checkpoint[0]).parent
    directory, table = write_report(evals, out, per_checkpoint=not offline)
    print(table)
    print(f'wrote {directory / "eval.json"} and {directory / "table.md"}')
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from loop_ros.demo import run_demo
    return run_demo(out=args.out, steps=args.steps, minutes=args.minutes)


def cmd_constraints(args: argparse.Namespace) -> int:
    """``loop-ros constraints``: one Constraints message to a running graph."""
    from loop_ros.ros.constraints import constraints_msg
    from loop_ros.ros.constraints import publish_constraints
    msg = constraints_msg(args.boundary_radius, [v for c in args.circle for v in c],
                          args.polygon)   # ConstraintError (a ConfigError): exit code 2
    return publish_constraints(msg, args.namespace, args.wait)


def parameters_markdown() -> str:
    """docs/parameters.md: every algorithm parameter, from the dataclasses."""
    from loop_ros.core.config import markdown_tables
    parts = ['# loop_ros algorithm parameters', '',
             'Generated by `loop-ros params` from `loop_ros/core/config.py`; `test/test_docs.py` '
             'keeps this file in sync. The same names are ROS parameters of the planner and '
             'learner nodes (`arc.horizon`, ...), options of `loop-ros train` (`--arc.horizon`) '
             'and keys of `config/*.yaml`. "static" parameters size networks, buffers or the '
             'warm-start plan, or name the device: read-only at run time (restart the node). Of '
             'the others, the planner and the learner each apply their own part while running '
             '([ros.md](ros.md#parameters-at-run-time)). The node-level parameters (rates, '
             'timeouts, checkpoint directory, ...) are in [ros.md](ros.md#parameters).', '',
             markdown_tables(LoopConfig), task_presets_markdown(), offline_markdown()]
    return '\n'.join(parts).rstrip() + '\n'


def offline_markdown() -> str:
    """The options of ``loop-ros train-offline`` and ``loop-ros dataset`` (docs/offline.md)."""
    from loop_ros.core.agent import OFFLINE_PRESETS
    from loop_ros.core.config import DatasetConfig, markdown_tables, OfflineConfig
    presets = ', '.join(f'`{k}: {v}`' for k, v in OFFLINE_PRESETS.items())
    return '\n'.join([
        '## Offline training and datasets', '',
        'Options of `loop-ros train-offline` (`--offline.*`) and `loop-ros dataset` '
        '(`--dataset.*`); see [offline.md](offline.md). Offline LOOP\'s planner presets '
        f'(`OFFLINE_PRESETS`, under config files and options): {presets}.', '',
        markdown_tables(OfflineConfig, 'offline.'), markdown_tables(DatasetConfig, 'dataset.')])


def task_presets_markdown() -> str:
    """The per-env presets of the registered tasks (``Task.hyperparameters``, start steps,
    ``Task.offline_hyperparameters``)."""
    import loop_ros.sim  # noqa: F401  (registers the loop_ros/ tasks)
    from loop_ros.core.tasks import get_task, registered_tasks
    lines = ['## Per-env presets', '',
             'A registered task may carry per-env values (`Task.hyperparameters` in '
             '`loop_ros/core/tasks.py`, like the paper\'s per-env tuning). Layering, lowest first: '
             'the defaults above, the env\'s presets, a config file or ROS params file / `-p`, '
             'then `loop-ros train` options. `train.start_steps: -1` takes the task\'s start '
             'steps. Offline presets (`Task.offline_hyperparameters`) apply to `loop-ros '
             'train-offline` only, over `OFFLINE_PRESETS` and the env\'s presets, and are saved '
             'in the checkpoint the planner then plans with.', '',
             '| env id | start steps | presets | offline presets |', '|---|---|---|---|']
    own = [e for e in registered_tasks() if '/' not in e or e.startswith('loop_ros/')]
    for env_id in own:   # the tasks loop_ros registers (not a robot's, nor the examples')
        task = get_task(env_id)
        presets, offline = (', '.join(f'`{k}: {v}`' for k, v in sorted(values.items()))
                            for values in (task.hyperparameters, task.offline_hyperparameters))
        lines.append(f'| `{env_id}` | {task.start_steps} | {presets} | {offline} |')
    return '\n'.join(lines) + '\n'


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['launch']:
        from loop_ros.launcher import main as launch_main
        return launch_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == 'train':
            return cmd_train(args)
        if args.command == 'demo':
            return cmd_demo(args)
        if args.command == 'dataset':
            return cmd_dataset(args)
        if args.command == 'train-offline':
            return cmd_train_offline(args)
        if args.command == 'eval-offline':
            return cmd_eval_offline(args)
        if args.command == 'eval':
            return cmd_eval_offline(args, offline=False)
        if args.command == 'params':
            print(parameters_markdown(), end='')
            return 0
        if args.command == 'bag':
            from loop_ros.bag_cli import run_bag
            return run_bag(args)
        if args.command == 'constraints':
            return cmd_constraints(args)
    except (ConfigError, EnvError, CheckpointError, BagError) as exc:
        parser.exit(2, f'loop-ros: error: {exc}\n')
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
