"""Does offline LOOP's score rank its candidates as the real environment does?

For states the base policy visits (its deterministic action, on tuning resets that no reported
evaluation uses), the planner makes one plan as configured; then EVERY candidate of that plan is
run in the real MuJoCo env from the same state (``set_state``): its H actions, then the base
policy for ``--tail`` more steps (or until the env terminates). Its real discounted return G
is compared with the planner's score S of that candidate:

* ``rank``: Spearman correlation of S and G over the candidates, mean over states;
* ``weighted``: the real return of the candidates averaged with the planner's weights,
  softmax(kappa S), against their plain average (what equal weights, kappa -> 0, would get) and
  against the base policy's own return from that state (``base``). ``weighted < uniform`` means
  the planner ranks worse than chance;
* ``executed``: the real return of what LOOP does with that plan, its first action (the
  weighted mean's) and then the base policy, against ``base``: ``executed > base`` is a one-step
  improvement over the base policy;
* the score's two parts against their real counterparts, over the same candidates: the
  model's H-step reward sum (mean over the scored members) against the real H-step reward sum
  (and against the whole real return G: how a score without the critic would rank),
  and the critic's terminal value Q(s_H, pi(s_H)) on the model's s_H against the real return
  from step H on (``--tail`` steps), plus the critic on the REAL s_H, which separates a critic
  that cannot rank real states from a model that leads it to the wrong ones.

Usage::

    python bench/offline_value.py --checkpoint runs/.../seed0/final.pt [--episodes 3]
        [--every 50] [--tail 300] [--eval-seed-base 1700000000] [--arc.temperature 0.3 ...]

Prints a table and writes ``value.json`` next to ``--out``. The numbers of
docs/offline_results.md ("Why planning adds little here") come from this script.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def spearman(x, y) -> float:
    """Rank correlation of two 1-D arrays (average ranks for ties); NaN if either is constant."""
    import numpy as np
    rx, ry = _ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float))
    if rx.std() == 0.0 or ry.std() == 0.0:
        return float('nan')
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values):
    """Ranks 0..n-1, ties sharing their average rank."""
    import numpy as np
    order = values.argsort(kind='stable')
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def real_return(env, qpos, qvel, actions, base_act, tail: int, gamma: float
                ) -> tuple[float, float, 'object']:
    """From the MuJoCo state (qpos, qvel): ``actions`` (H, A), then ``base_act`` for ``tail``
    steps. Returns (discounted return of the H steps, discounted return from step H on
    (discounted to step H), the real observation at step H, or None if it terminated before)."""
    env.unwrapped.set_state(qpos, qvel)
    head = tail_return = 0.0
    obs = env.unwrapped._get_obs()
    for t, action in enumerate(actions):
        obs, reward, terminated, _, _ = env.step(action)
        head += gamma ** t * float(reward)
        if terminated:
            return head, 0.0, None
    obs_h = obs
    for t in range(tail):
        obs, reward, terminated, _, _ = env.step(base_act(obs))
        tail_return += gamma ** t * float(reward)
        if terminated:
            break
    return head, tail_return, obs_h


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--episodes', type=int, default=3, help='base-policy episodes to draw '
                        'states from')
    parser.add_argument('--every', type=int, default=50, help='a state every this many steps')
    parser.add_argument('--max-states', type=int, default=8, help='states per episode at most')
    parser.add_argument('--tail', type=int, default=300, help='base-policy steps after the plan')
    parser.add_argument('--eval-seed-base', type=int, default=1_700_000_000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=None, help='folder for value.json (default: the '
                        "checkpoint's)")
    args, rest = parser.parse_known_args()
    overrides = {}
    for i in range(0, len(rest), 2):   # --arc.temperature 0.3 ...
        key = rest[i].lstrip('-')
        if not key.startswith('arc.') or i + 1 >= len(rest):
            parser.error(f'unexpected option {rest[i]} (only --arc.NAME VALUE pairs)')
        overrides[key] = yaml_value(rest[i + 1])

    import numpy as np
    import torch
    from dataclasses import replace
    from loop_ros.envs import make_env
    from loop_ros.offline.evaluation import load_offline_policy
    torch.set_num_threads(args.threads)
    policy, env_id, _ = load_offline_policy(args.checkpoint, overrides, device='cpu',
                                            seed=args.seed)
    planner = policy.planner
    cfg = planner.cfg
    if cfg.rollout != 'mean' or cfg.scoring != 'paper':
        parser.error("the score's parts are split for arc.rollout mean and arc.scoring paper")
    no_value = replace(cfg, value='none')
    gamma = cfg.gamma
    env = make_env(env_id)

    def base_act(obs):
        return policy.act(obs, explore=False, use_planner=False)[0]

    states = []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=args.eval_seed_base + episode)
        for t in range(1000):
            if t % args.every == 0 and sum(1 for s in states if s[0] == episode) < args.max_states:
                u = env.unwrapped
                states.append((episode, t, obs.copy(), u.data.qpos.copy(), u.data.qvel.copy()))
            obs, _, terminated, truncated, _ = env.step(base_act(obs))
            if terminated or truncated:
                break

    start = time.perf_counter()
    rows = []
    for episode, t, obs, qpos, qvel in states:
        planner.reset()
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        with torch.no_grad():
            executed, _ = planner.plan(obs_t)
            candidates, scores = planner._last
            plans = candidates.clamp(-1.0, 1.0)
            # the score's parts from the planner's own rollout: with the terminal value and
            # without it (value='none'); member means, so both see the same states
            full = planner._imagine(obs_t, plans).returns
            planner.reconfigure(no_value)
            head_only = planner._imagine(obs_t, plans).returns
            planner.reconfigure(cfg)
            model_head = head_only.mean(dim=(0, 2))
            model_value = ((full - head_only) / gamma ** cfg.horizon).mean(dim=(0, 2))
        real = [real_return(env, qpos, qvel, p.numpy(), base_act, args.tail, gamma)
                for p in plans]
        head = np.array([r[0] for r in real])
        tail = np.array([r[1] for r in real])
        alive_h = np.array([r[2] is not None for r in real])
        real_sh = np.stack([r[2] if r[2] is not None else obs for r in real]).astype(np.float32)
        with torch.no_grad():
            x = torch.as_tensor(real_sh)
            critic_real = planner.critic(x, planner.actor(x)).numpy() * alive_h
        g = head + gamma ** cfg.horizon * tail
        s = scores.numpy()
        finite = np.isfinite(s)
        w = np.exp(cfg.temperature * (s[finite] - s[finite].max()))
        w /= w.sum()
        base_plan = real_return(env, qpos, qvel, np.zeros((0, plans.shape[2])), base_act,
                                args.tail + cfg.horizon, gamma)[1]
        head_1, tail_1, _ = real_return(env, qpos, qvel, executed.numpy()[None], base_act,
                                        args.tail + cfg.horizon - 1, gamma)
        executed_return = head_1 + gamma * tail_1
        rows.append({
            'episode': episode, 't': t,
            'rank': spearman(s[finite], g[finite]),
            'rank_model_head': spearman(model_head.numpy(), head),
            'rank_head_total': spearman(model_head.numpy(), g),
            'rank_value_imagined': spearman(model_value.numpy(), tail),
            'rank_value_real': spearman(critic_real, tail),
            'weighted': float((w * g[finite]).sum()), 'uniform': float(g.mean()),
            'best': float(g.max()), 'base': float(base_plan),
            'executed': float(executed_return),
            'spread': float(g.std()),
        })
        r = rows[-1]
        print(f"ep {episode} t {t:4d}: rank {r['rank']:+.2f} (head {r['rank_model_head']:+.2f},"
              f" Q imagined {r['rank_value_imagined']:+.2f}, Q real {r['rank_value_real']:+.2f})"
              f"  G weighted {r['weighted']:.1f} uniform {r['uniform']:.1f} base {r['base']:.1f}"
              f" best {r['best']:.1f} executed {r['executed']:.1f}", flush=True)
    keys = ['rank', 'rank_model_head', 'rank_head_total', 'rank_value_imagined',
            'rank_value_real']
    summary = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    for k in ('weighted', 'uniform', 'base', 'best', 'spread', 'executed'):
        summary[k] = float(np.mean([r[k] for r in rows]))
    summary['weighted_beats_uniform'] = float(np.mean([r['weighted'] > r['uniform']
                                                       for r in rows]))
    summary['weighted_beats_base'] = float(np.mean([r['weighted'] > r['base'] for r in rows]))
    summary['executed_beats_base'] = float(np.mean([r['executed'] > r['base'] for r in rows]))
    print(f'\n{len(rows)} states, {env_id}, H={cfg.horizon}, kappa={cfg.temperature}, '
          f'sigma={cfg.policy_noise}, beta_pess={cfg.pessimism}, tail {args.tail} '
          f'({time.perf_counter() - start:.0f} s)')
    print('| rank(S, G) | rank(model head) | rank(model head, G) | rank(Q on model s_H) | '
          'rank(Q on real s_H) | G weighted | G uniform | G base policy | G executed | '
          'weighted > uniform | executed > base |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    print(f"| {summary['rank']:+.2f} | {summary['rank_model_head']:+.2f} | "
          f"{summary['rank_head_total']:+.2f} | "
          f"{summary['rank_value_imagined']:+.2f} | {summary['rank_value_real']:+.2f} | "
          f"{summary['weighted']:.1f} | {summary['uniform']:.1f} | {summary['base']:.1f} | "
          f"{summary['executed']:.1f} | {summary['weighted_beats_uniform']:.0%} | "
          f"{summary['executed_beats_base']:.0%} |")
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / 'value.json').write_text(json.dumps(
        {'args': vars(args), 'overrides': overrides, 'summary': summary, 'states': rows},
        indent=2))
    return 0


def yaml_value(text: str):
    import yaml
    return yaml.safe_load(text)


if __name__ == '__main__':
    sys.exit(main())
