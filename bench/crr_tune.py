"""How CRR's advantage temperature was chosen: CRR variants on a bag, actor evaluated on the way.

Offline LOOP plans around the base policy, so a weak base caps what the table can show. This
script trains only CRR (no ensemble) with each ``--variants`` setting on each bag and evaluates
the deterministic actor tanh(mu(s)) every ``--every`` updates on ``--episodes`` resets from
``--eval-seed-base`` (a range that neither the reported table nor any dataset uses). A variant
with ``crr_beta`` very large weighs every dataset action alike: behaviour cloning, the floor
CRR should beat.

Usage::

    python bench/crr_tune.py --bags runs/bench_offline/datasets/Hopper-v5/medium \
        --variants crr_beta=1 crr_beta=10 crr_beta=1e6 [--updates 5000] [--every 2500]
        [--episodes 3] [--seed 100] [--out runs/bench_crr_tune]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from offline_tune import write_report  # noqa: E402  (bench/ is this script's directory)


def parse_variant(text: str) -> dict[str, float | int | str]:
    """``'crr_beta=10,crr_weight=exp'`` -> OfflineConfig overrides ('' is the default)."""
    out: dict[str, float | int | str] = {}
    for item in filter(None, text.split(',')):
        name, _, value = item.partition('=')
        for kind in (int, float, str):
            try:
                out[name] = kind(value)
                break
            except ValueError:
                continue
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--bags', nargs='+', required=True)
    parser.add_argument('--variants', nargs='+', default=['crr_beta=1', 'crr_beta=10',
                                                          'crr_beta=1e6'])
    parser.add_argument('--updates', type=int, default=5000)
    parser.add_argument('--every', type=int, default=2500)
    parser.add_argument('--episodes', type=int, default=3)
    parser.add_argument('--seed', type=int, default=100, help='training seed (not reported)')
    parser.add_argument('--eval-seed-base', type=int, default=1_700_000_000)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='runs/bench_crr_tune')
    args = parser.parse_args()

    import numpy as np
    import torch
    from loop_ros.core.config import LoopConfig, OfflineConfig, replace
    from loop_ros.core.crr import CrrAgent
    from loop_ros.envs import make_env
    from loop_ros.io import read_transitions
    from loop_ros.offline.training import OfflineBatch, env_id_of_bags
    from loop_ros.train import run_episode
    torch.set_num_threads(args.threads)
    hidden = LoopConfig().sac.hidden_sizes
    results = []
    start = time.perf_counter()
    for bag in args.bags:
        env_id = env_id_of_bags([bag])
        data = read_transitions([bag])
        t = {k: torch.as_tensor(np.asarray(getattr(data, k)), dtype=torch.float32)
             for k in ('obs', 'action', 'reward', 'next_obs', 'terminated')}
        n = t['obs'].shape[0]
        env = make_env(env_id)
        for text in args.variants:
            ocfg = replace(OfflineConfig(), **{'seed': args.seed, **parse_variant(text)})
            torch.manual_seed(ocfg.seed)
            agent = CrrAgent(data.obs_dim, data.act_dim, hidden, ocfg)
            generator = torch.Generator().manual_seed(ocfg.seed)
            curve = []
            for step in range(1, args.updates + 1):
                idx = torch.randint(n, (ocfg.batch_size,), generator=generator)
                metrics = agent.update(OfflineBatch(**{k: v[idx] for k, v in t.items()}))
                if step % args.every == 0:
                    def act(obs):
                        return agent.act(torch.as_tensor(obs, dtype=torch.float32)).numpy()
                    returns = [run_episode(env, act, args.eval_seed_base + i)[0]
                               for i in range(args.episodes)]
                    curve.append({'updates': step, 'return': float(np.mean(returns)),
                                  'mean_weight': metrics['crr/mean_weight']})
                    print(f'{Path(bag).name} {text or "default"} {step}: return '
                          f"{np.mean(returns):.1f}, mean weight {metrics['crr/mean_weight']:.3f}",
                          flush=True)
            results.append({'bag': str(bag), 'env': env_id, 'variant': text or 'default',
                            'curve': curve})
        env.close()
    lines = ['| bag | variant | ' + ' | '.join(f'{c["updates"]} updates'
                                              for c in results[0]['curve']) + ' |',
             '|---|---|' + '---|' * len(results[0]['curve'])]
    for r in results:
        lines.append(f"| {Path(r['bag']).parent.name}/{Path(r['bag']).name} | {r['variant']} | "
                     + ' | '.join(f"{c['return']:.0f}" for c in r['curve']) + ' |')
    write_report(Path(args.out), '\n'.join(lines), {'args': vars(args), 'results': results},
                 start)
    return 0


if __name__ == '__main__':
    sys.exit(main())
