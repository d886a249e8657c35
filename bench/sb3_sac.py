"""stable-baselines3's SAC under loop_ros's SAC settings and evaluation protocol: one learning run.

The correctness check of issue #14 (our SAC should be within noise of SB3's): ``bench/learning.py
--algos sb3`` runs this script in the peers venv (SB3 would pull a CUDA torch into the project's
venv; recipe in ``bench/learner_speed.py``) and reads the ``metrics.csv`` it writes, in the same
columns as ``loop-ros train``'s.

Matched to ``SacConfig``/``TrainConfig`` defaults (read from the source tree, so they cannot drift):
actor and twin critic ``hidden_sizes`` ReLU, Adam at ``lr`` for both and for the temperature,
``batch_size``, ``tau``, ``gamma``, initial alpha ``init_alpha`` tuned to the target entropy
``-target_entropy_scale * act_dim``, the task's ``start_steps`` uniform-random steps, then
``updates_per_step * sac_update_every`` gradient steps every ``sac_update_every`` env steps. The
evaluation is ``loop_ros.train.evaluate``'s actor protocol: every ``eval_every`` steps (and at the
end), ``actor_eval_episodes`` episodes of the deterministic actor on a separate env with reset
seeds ``seed + 100 + step + 50 + i``, none of which a training run resets with.

Usage (from the repository root)::

    PYTHONPATH=. .venv-peers/bin/python bench/sb3_sac.py --env Hopper-v5 --steps 15000 --seed 1 \
        --out runs/x --eval-every 5000 --eval-episodes 5
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree

from loop_ros.core.config import SacConfig, TrainConfig  # noqa: E402
from loop_ros.train import run_episode, task_of  # noqa: E402

from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402


class Evaluate(BaseCallback):
    """Evaluates every ``every`` env steps and at ``total``; one metrics.csv row each."""

    def __init__(self, env: gym.Env, seed: int, every: int, episodes: int, total: int,
                 writer: csv.DictWriter, file) -> None:
        super().__init__()
        self.env, self.seed, self.every, self.episodes, self.total = env, seed, every, episodes, total
        self.writer, self.file, self.start = writer, file, time.perf_counter()

    def _on_step(self) -> bool:
        step = self.num_timesteps
        if (self.every and step % self.every == 0) or step == self.total:
            base = self.seed + 100 + (step - 1) + 50   # loop_ros.train: seed + 100 + step index
            act = lambda obs: self.model.predict(obs, deterministic=True)[0]  # noqa: E731
            returns = [run_episode(self.env, act, base + i)[0] for i in range(self.episodes)]
            self.writer.writerow({'env_step': step,
                                  'wall_s': round(time.perf_counter() - self.start, 2),
                                  'eval_planner_return': math.nan,
                                  'eval_actor_return': float(np.mean(returns))})
            self.file.flush()
        return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--env', default='Hopper-v5')
    parser.add_argument('--steps', type=int, default=15000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--eval-every', type=int, default=TrainConfig().eval_every)
    parser.add_argument('--eval-episodes', type=int, default=TrainConfig().actor_eval_episodes)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sac, train = SacConfig(), TrainConfig()
    start_steps = task_of(args.env, warn=False).start_steps if train.start_steps < 0 else train.start_steps
    env, eval_env = gym.make(args.env), gym.make(args.env)
    act_dim = int(env.action_space.shape[0])
    burst = max(1, train.sac_update_every)
    model = SAC('MlpPolicy', env, learning_rate=sac.lr, buffer_size=train.buffer_capacity,
                learning_starts=start_steps, batch_size=sac.batch_size, tau=sac.tau,
                gamma=sac.gamma, train_freq=(burst, 'step'),
                gradient_steps=int(round(train.updates_per_step * burst)),
                ent_coef=f'auto_{sac.init_alpha}',
                target_entropy=-sac.target_entropy_scale * act_dim,
                policy_kwargs={'net_arch': list(sac.hidden_sizes),
                               'activation_fn': torch.nn.ReLU},
                seed=args.seed, device='cpu', verbose=0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / 'metrics.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, ['env_step', 'wall_s', 'eval_planner_return',
                                    'eval_actor_return'])
        writer.writeheader()
        model.learn(args.steps, callback=Evaluate(eval_env, args.seed, args.eval_every,
                                                  args.eval_episodes, args.steps, writer, f))
    return 0


if __name__ == '__main__':
    sys.exit(main())
