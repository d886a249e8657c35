"""ARC step time at the paper's settings against two floors, measured in the same run.

Settings (spec sec. 3): H=3, N=100 Gaussian + 5 actor candidates, 4 particles, 5 iterations,
a 7-member / 5-elite 4x200 SiLU ensemble, 256x256 SAC actor and twin critic, HalfCheetah
dimensions (obs 17, act 6), untrained weights.

A floor is the bare batched matrix products of a plan, nothing else (no sampling,
normalisation, scoring or Python bookkeeping): per iteration, H steps of the ensemble on
members x (N + actor rows) x particles rows, then on every terminal row the actor (paper
scoring: Q(s_H, pi(s_H))) and both critic heads (ARC scores with min(Q1, Q2)).

* full-budget floor: the paper's sample budget as the authors' code spends it, all 7 members
  rolled out; the target is ARC <= 0.8x this floor;
* own floor (one per variant): the work that variant's configuration asks for: the members it
  rolls out (the 5 elites by default), its particles (1 for ``rollout: mean``), the actor only
  where the scoring needs it. The target is <= 1.1x, i.e. at most 10% spent outside the matmuls.

Usage: ``python bench/planner.py [--steps 50] [--rounds 3] [--device cpu|cuda] [--threads 2]``.
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


def make_floor(arc: ArcConfig, ens: EnsembleConfig, sac: SacConfig, device: torch.device,
               full_budget: bool = False):
    """The bare matmuls of one plan of ``arc``: the members it rolls out (all of them with
    ``full_budget``), its particles, the actor where its scoring needs it, both critic heads."""
    members = ens.num_members if full_budget or not arc.elites_only else ens.num_elites
    particles = arc.num_particles if full_budget or arc.rollout != 'mean' else 1
    rows = (arc.num_samples + arc.num_actor_trajs) * particles
    with_actor = full_budget or arc.scoring == 'paper'
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
            for _ in range(2):   # twin critic heads
                mlp(flat_q, q_layers)
            if with_actor:
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
    configs = {
        'ARC (paper scoring, elites only)': arc_cfg,
        'ARC (reference scoring, elites only)': ArcConfig(scoring='reference'),
        'ARC (paper scoring, all 7 members)': ArcConfig(elites_only=False),
        'ARC (mean rollouts: one particle per member)': ArcConfig(rollout='mean'),
    }
    timed = {'full-budget floor': make_floor(arc_cfg, ens_cfg, sac_cfg, device, True)}
    for name, cfg in configs.items():
        timed[name] = make_arc(cfg, ens_cfg, sac_cfg, device)
        timed[f'  own floor of {name}'] = make_floor(cfg, ens_cfg, sac_cfg, device)
    results: dict[str, list[float]] = {name: [] for name in timed}
    # interleave rounds so a noisy neighbour hits every variant alike
    for _ in range(args.rounds):
        for name, fn in timed.items():
            results[name] += time_calls(fn, args.steps, device)
    median = {name: statistics.median(times) for name, times in results.items()}
    full_ms = median['full-budget floor']
    print(f'device={device} threads={torch.get_num_threads()} H={arc_cfg.horizon} '
          f'N={arc_cfg.num_samples}+{arc_cfg.num_actor_trajs} P={arc_cfg.num_particles} '
          f'iters={arc_cfg.num_iterations} ensemble={ens_cfg.num_members}x{ens_cfg.num_layers}x'
          f'{ens_cfg.hidden_size} obs={OBS_DIM} act={ACT_DIM}')
    print(f'{"full-budget floor (7 members, actor, 2 Q heads)":48s} median {full_ms:7.1f} ms')
    for name in configs:
        ms, own_ms = median[name], median[f'  own floor of {name}']
        p90 = statistics.quantiles(results[name], n=10)[-1]
        print(f'{name:48s} median {ms:7.1f} ms  p90 {p90:7.1f} ms  '
              f'{ms / full_ms:.2f}x full-budget floor (target <= 0.8)  '
              f'{ms / own_ms:.2f}x own floor of {own_ms:.1f} ms (target <= 1.1)')


if __name__ == '__main__':
    main()
