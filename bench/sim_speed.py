"""RC-car simulator speed: single-env gymnasium steps/s and batched torch car-steps/s.

Targets on the 2-core CPU machines: >= 20k single-env steps/s (``env.step`` of
``loop_ros/RCCarCircle-v0`` with random actions) and >= 1M batched car-steps/s
(:class:`~loop_ros.sim.rc_car_dynamics.RCCarDynamicsTorch`, float32). Prints the measured rates
and their ratio to the targets; asserts nothing (the machines are shared and noisy).

Usage::

    python bench/sim_speed.py [--seconds 1.0] [--batch 4096 8192] [--threads 1] [--device cpu]

One torch thread is the default: with other processes on the two cores, a second intra-op thread
mostly spin-waits (``--threads 2`` to compare).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree, as in `make bench`
import loop_ros.sim  # noqa: E402,F401  (registers the ids)
from loop_ros.sim.rc_car import observation_torch  # noqa: E402
from loop_ros.sim.rc_car_dynamics import RCCarDynamicsTorch  # noqa: E402

SINGLE_TARGET = 20_000.0
"""Single-env steps per second to reach."""
BATCH_TARGET = 1_000_000.0
"""Batched car-steps per second to reach."""


def single_env_rate(seconds: float, unwrapped: bool) -> float:
    """Steps/s of ``env.step`` with pre-drawn uniform random actions (resets included)."""
    env = gym.make('loop_ros/RCCarCircle-v0')
    target = env.unwrapped if unwrapped else env
    target.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (4096, 2)).astype(np.float32)
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for action in actions[:500]:
            _, _, terminated, truncated, _ = target.step(action)
            if terminated or truncated:
                target.reset()
        steps += 500
        actions = np.roll(actions, 500, axis=0)
    return steps / (time.perf_counter() - start)


def batched_rate(batch: int, seconds: float, device: torch.device,
                 with_observations: bool) -> float:
    """Car-steps/s of the batched dynamics (and observations) with random actions."""
    model = RCCarDynamicsTorch()
    generator = torch.Generator(device='cpu').manual_seed(0)
    state = torch.zeros(batch, 6)
    state[:, 0] = -1.0
    state[:, 3] = torch.rand(batch, generator=generator) * 2.0
    state = state.to(device)
    actions = (torch.rand(16, batch, 2, generator=generator) * 2 - 1).to(device)
    for index in range(3):  # warm-up
        state = model(state, actions[index])
    synchronize = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    synchronize()
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        state = model(state, actions[steps % len(actions)])
        if with_observations:
            observation_torch(state)
        steps += 1
    synchronize()
    if not bool(torch.isfinite(state).all()):
        print('WARNING: non-finite states in the batched run')
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=1.0, help='time per measurement')
    parser.add_argument('--batch', type=int, nargs='+', default=[4096, 8192],
                        help='numbers of cars for the batched measurement')
    parser.add_argument('--threads', type=int, default=1, help='torch intra-op threads')
    parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cpu' or 'cuda'")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    for unwrapped in (False, True):
        rate = single_env_rate(args.seconds, unwrapped)
        label = 'env.unwrapped.step' if unwrapped else 'gym.make(...).step'
        print(f'single env  {label:22s} {rate:12,.0f} steps/s   '
              f'{rate / SINGLE_TARGET:5.2f}x the 20k target')
    for batch in args.batch:
        for with_observations in (False, True):
            rate = batched_rate(batch, args.seconds, device, with_observations)
            label = f'B={batch} {device.type}' + (' +obs' if with_observations else '')
            print(f'batched     {label:22s} {rate:12,.0f} car-steps/s '
                  f'{rate / BATCH_TARGET:5.2f}x the 1M target')
    print(f'(torch {torch.__version__}, {torch.get_num_threads()} thread(s); dt 0.1 s, '
          '5 RK4 substeps per step)')


if __name__ == '__main__':
    main()
