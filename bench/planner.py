"""ARC step time at the paper's settings against its floor, measured in the same run.

Settings (spec sec. 3): H=3, N=100 Gaussian + 5 actor candidates, 4 particles, 5 iterations,
a 7-member / 5-elite 4x200 SiLU ensemble, 256x256 SAC actor and twin critic, HalfCheetah
dimensions (obs 17, act 6), untrained weights.

Floor: the bare batched matrix products of that sample budget with ALL 7 members rolled out,
as the authors' code does: 5 iterations x 3 steps of the 7-member ensemble on 7 x 420 rows,
plus per iteration one critic head and one actor pass on those 7 x 420 rows. Nothing else
(no sampling, normalisation, scoring or Python bookkeeping). The authors' ARC measures about
1.65x this floor on the project's CPU (``docs/benchmarks.md``); loop_ros aims for <= 1.0x.

Usage: ``python bench/planner.py [--steps 50] [--device cpu|cuda] [--threads 2]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from loop_ros.core.arc import ArcPlanner
from loop_ros.core.config import ArcConfig, EnsembleConfig, SacConfig
from loop_ros.core.ensemble import ProbabilisticEnsemble
from loop_ros.core.sac import SacAgent

OBS_DIM, ACT_DIM = 17, 6


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_calls(fn, steps: int, device: torch.device) -> list[float]:
    """Wall time of each call in ms, after 5 warm-up calls."""
    for _ in range(5):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def make_floor(arc: ArcConfig, ens: EnsembleConfig, sac: SacConfig, device: torch.device):
    """The bare matmuls of one plan with every member rolled out."""
    members = ens.num_members
    rows = (arc.num_samples + arc.num_actor_trajs) * arc.num_particles
    widths = [OBS_DIM + ACT_DIM] + [ens.hidden_size] * ens.num_layers + [2 * (OBS_DIM + 1)]
    weights = [torch.randn(members, i, o, device=device) * 0.05 for i, o in zip(widths, widths[1:])]
    biases = [torch.zeros(members, 1, o, device=device) for o in widths[1:]]
    q_widths = [OBS_DIM + ACT_DIM, *sac.hidden_sizes, 1]
    pi_widths = [OBS_DIM, *sac.hidden_sizes, 2 * ACT_DIM]
    q_layers = [(torch.randn(i, o, device=device) * 0.05, torch.zeros(o, device=device))
                for i, o in zip(q_widths, q_widths[1:])]
    pi_layers = [(torch.randn(i, o, device=device) * 0.05, torch.zeros(o, device=device))
                 for i, o in zip(pi_widths, pi_widths[1:])]
    x = torch.randn(members, rows, OBS_DIM + ACT_DIM, device=device)
    flat_q = x.reshape(-1, OBS_DIM + ACT_DIM)
    flat_obs = flat_q[:, :OBS_DIM].contiguous()

    def mlp(h, layers):
        for i, (w, b) in enumerate(layers):
            h = torch.addmm(b, h, w)
            if i < len(layers) - 1:
                h = F.relu(h)
        return h

    @torch.no_grad()
    def floor() -> None:
        for _ in range(arc.num_iterations):
            for _ in range(arc.horizon):
                h = x
                for i, (w, b) in enumerate(zip(weights, biases)):
                    h = torch.baddbmm(b, h, w)
                    if i < len(weights) - 1:
                        h = F.silu(h)
            mlp(flat_q, q_layers)
            mlp(flat_obs, pi_layers)
    return floor


def make_arc(arc_cfg: ArcConfig, ens_cfg: EnsembleConfig, sac_cfg: SacConfig,
             device: torch.device):
    ensemble = ProbabilisticEnsemble(OBS_DIM, ACT_DIM, ens_cfg, device)
    agent = SacAgent(OBS_DIM, ACT_DIM, sac_cfg, device)
    planner = ArcPlanner(arc_cfg, OBS_DIM, ACT_DIM, ensemble, actor=agent.actor.mean_action,
                         critic=agent.critic.min_q, device=device)
    obs = torch.randn(OBS_DIM, device=device)

    def step() -> None:
        planner.plan(obs, explore=True)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=50)
    parser.add_argument('--rounds', type=int, default=3, help='alternating floor/ARC rounds')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    arc_cfg, ens_cfg, sac_cfg = ArcConfig(), EnsembleConfig(), SacConfig()
    floor = make_floor(arc_cfg, ens_cfg, sac_cfg, device)
    variants = {
        'ARC (paper scoring, elites only)': make_arc(arc_cfg, ens_cfg, sac_cfg, device),
        'ARC (reference scoring, elites only)': make_arc(
            ArcConfig(scoring='reference'), ens_cfg, sac_cfg, device),
        'ARC (paper scoring, all 7 members)': make_arc(
            ArcConfig(elites_only=False), ens_cfg, sac_cfg, device),
        'ARC (mean rollouts: one particle per member)': make_arc(
            ArcConfig(rollout='mean'), ens_cfg, sac_cfg, device),
    }
    results: dict[str, list[float]] = {'floor': []}
    results.update({name: [] for name in variants})
    # interleave rounds so a noisy neighbour hits every variant alike
    for _ in range(args.rounds):
        results['floor'] += time_calls(floor, args.steps, device)
        for name, fn in variants.items():
            results[name] += time_calls(fn, args.steps, device)
    floor_ms = statistics.median(results['floor'])
    print(f'device={device} threads={torch.get_num_threads()} H={arc_cfg.horizon} '
          f'N={arc_cfg.num_samples}+{arc_cfg.num_actor_trajs} P={arc_cfg.num_particles} '
          f'iters={arc_cfg.num_iterations} ensemble={ens_cfg.num_members}x{ens_cfg.num_layers}x'
          f'{ens_cfg.hidden_size} obs={OBS_DIM} act={ACT_DIM}')
    print(f'{"floor (bare matmuls, 7 members)":44s} median {floor_ms:7.1f} ms')
    for name in variants:
        ms = statistics.median(results[name])
        p90 = statistics.quantiles(results[name], n=10)[-1]
        print(f'{name:44s} median {ms:7.1f} ms  p90 {p90:7.1f} ms  ratio to floor '
              f'{ms / floor_ms:.2f}x')


if __name__ == '__main__':
    main()
