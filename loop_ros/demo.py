"""``make demo`` / ``loop-ros demo``: the main job on its embedded default.

Standalone LOOP (ARC + SAC + ensemble) learning InvertedPendulum-v5 live with a progress bar,
then a learning-curve PNG in the output directory.
"""
from __future__ import annotations

from loop_ros.core.config import LoopConfig, replace

DEMO_ENV = 'InvertedPendulum-v5'


def demo_config(steps: int) -> LoopConfig:
    """The benchmark's LOOP settings with an evaluation every 1000 steps."""
    return replace(LoopConfig(), **{'train.total_steps': steps, 'train.eval_every': 1000,
                                    'train.eval_episodes': 1, 'train.actor_eval_episodes': 3})


def run_demo(out: str = 'runs/demo', steps: int | None = None,
             minutes: float | None = None) -> int:
    from loop_ros.train import torch_threads, train
    torch_threads(2)
    result = train(DEMO_ENV, demo_config(steps or 5000), out)
    ev = result.final_eval
    print(f'LOOP on {DEMO_ENV}: {result.env_steps} steps in {result.wall_s / 60:.1f} min; '
          f'final eval return (ARC) {ev.planner_return:.1f}, actor alone {ev.actor_return:.1f}; '
          f'learning curve: {result.out_dir / "learning_curve.png"}')
    return 0
