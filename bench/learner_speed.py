"""SAC gradient updates per second: loop_ros against stable-baselines3, timed in one run.

Identical networks (actor and twin critic 256x256 ReLU, HalfCheetah dimensions: obs 17,
act 6), batch 256, Adam with the same learning rate, automatic entropy tuning, one target update
per gradient step; both sample their batches from their own replay buffer holding the same
20 000 random transitions. Timed: ``SacAgent.update`` on ``ReplayBuffer.sample`` batches against
SB3's ``SAC.train(gradient_steps=K)``, in alternating rounds so a noisy neighbour hits both
alike. Also reports the ensemble's training throughput (samples per second through
``ProbabilisticEnsemble.fit``, paper size 7 x 4 x 200).

The issue's target (#14): >= 2x SB3's updates per second.

stable-baselines3 does not share the project's venv (its torch requirement would pull a CUDA
build before the pin), so this runs in the peers venv of ``bench/planner_peer.py``::

    .venv-peers/bin/pip install stable-baselines3==2.9.2 gymnasium==1.4.0
    .venv-peers/bin/pip install mujoco==4.0.0 imageio==2.38.2 packaging==26.4  # MuJoCo envs
                                                                           # (bench/sb3_sac.py)
    PYTHONPATH=. .venv-peers/bin/python bench/learner_speed.py --updates 300 --rounds 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree

from loop_ros.core.config import EnsembleConfig, SacConfig  # noqa: E402
from loop_ros.core.ensemble import ProbabilisticEnsemble  # noqa: E402
from loop_ros.core.replay import ReplayBuffer  # noqa: E402
from loop_ros.core.sac import SacAgent  # noqa: E402

OBS_DIM, ACT_DIM, BATCH, HIDDEN, TRANSITIONS = 17, 6, 256, (256, 256), 20_000


def random_transitions(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {'obs': rng.standard_normal((TRANSITIONS, OBS_DIM)).astype(np.float32),
            'action': rng.uniform(-1, 1, (TRANSITIONS, ACT_DIM)).astype(np.float32),
            'reward': rng.standard_normal(TRANSITIONS).astype(np.float32),
            'next_obs': rng.standard_normal((TRANSITIONS, OBS_DIM)).astype(np.float32),
            'terminated': np.zeros(TRANSITIONS, bool)}


def ours(data: dict[str, np.ndarray], lr: float):
    agent = SacAgent(OBS_DIM, ACT_DIM, SacConfig(hidden_sizes=HIDDEN, lr=lr, batch_size=BATCH))
    buffer = ReplayBuffer(OBS_DIM, ACT_DIM, TRANSITIONS)
    n = TRANSITIONS
    buffer.add_batch(data['obs'], data['action'], data['reward'], np.zeros(n, np.float32),
                     data['next_obs'], data['terminated'], np.zeros(n, bool))

    def updates(k: int) -> None:
        for _ in range(k):
            agent.update(buffer.sample(BATCH))
    return updates


def sb3(data: dict[str, np.ndarray], lr: float):
    import gymnasium as gym
    from stable_baselines3 import SAC

    class Box(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)

    model = SAC('MlpPolicy', Box(), learning_rate=lr, buffer_size=TRANSITIONS,
                batch_size=BATCH, learning_starts=0, policy_kwargs={'net_arch': list(HIDDEN)},
                device='cpu', verbose=0)
    buf = model.replay_buffer
    for i in range(TRANSITIONS):
        buf.add(data['obs'][i:i + 1], data['next_obs'][i:i + 1], data['action'][i:i + 1],
                data['reward'][i:i + 1], data['terminated'][i:i + 1], [{}])
    from stable_baselines3.common.logger import configure
    model.set_logger(configure(None, []))

    def updates(k: int) -> None:
        model.train(gradient_steps=k, batch_size=BATCH)
    return updates


def ensemble_samples_per_s(rng: np.random.Generator, epochs: int = 2) -> float:
    cfg = EnsembleConfig()
    model = ProbabilisticEnsemble(OBS_DIM, ACT_DIM, cfg, torch.device('cpu'))
    obs = torch.as_tensor(rng.standard_normal((TRANSITIONS, OBS_DIM)), dtype=torch.float32)
    act = torch.as_tensor(rng.uniform(-1, 1, (TRANSITIONS, ACT_DIM)), dtype=torch.float32)
    rew = torch.as_tensor(rng.standard_normal(TRANSITIONS), dtype=torch.float32)
    t0 = time.perf_counter()
    info = model.fit(obs, act, rew, obs + 0.1 * torch.randn_like(obs), max_epochs=epochs)
    seconds = time.perf_counter() - t0
    return info['model/epochs'] * info['model/num_train'] * cfg.num_members / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--updates', type=int, default=300, help='gradient steps per round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--lr', type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = random_transitions(rng)
    import stable_baselines3
    timed = {'loop_ros SacAgent.update': ours(data, args.lr),
             f'stable-baselines3 {stable_baselines3.__version__} SAC.train': sb3(data, args.lr)}
    rates: dict[str, list[float]] = {name: [] for name in timed}
    for fn in timed.values():
        fn(20)   # warm-up
    for _ in range(args.rounds):
        for name, fn in timed.items():
            t0 = time.perf_counter()
            fn(args.updates)
            rates[name].append(args.updates / (time.perf_counter() - t0))
    print(f'threads={torch.get_num_threads()} batch={BATCH} networks={HIDDEN} obs={OBS_DIM} '
          f'act={ACT_DIM} lr={args.lr}; {args.rounds} rounds of {args.updates} updates')
    ours_rate = statistics.median(rates['loop_ros SacAgent.update'])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f'{name:44s} {rate:7.1f} updates/s (rounds: '
              f'{", ".join(f"{v:.0f}" for v in values)})  loop_ros / this {ours_rate / rate:.2f}x')
    print(f'ensemble fit (7 x 4 x 200, batch 256): '
          f'{ensemble_samples_per_s(rng):,.0f} member-samples/s')


if __name__ == '__main__':
    main()
