"""loop_ros's planner against a peer from PyPI, TorchRL's ``CEMPlanner``, timed in one run.

Both plan with the same learned model: a ``ProbabilisticEnsemble`` at the paper's size (7
members, 5 elites, 4x200 SiLU), HalfCheetah dimensions (obs 17, act 6), untrained weights.
Same sample budget as ``bench/planner.py``: H = 3, 5 iterations, 100 candidates x 4 particles
rolled through each of the 5 elites, i.e. 2000 model rows per step, sampled states.

* TorchRL: ``torchrl.modules.planners.CEMPlanner`` over a ``ModelBasedEnvBase`` whose world
  model is that ensemble (its 2000 candidates are 5 elite slices of 400 rows), top-k 20; TorchRL
  values a candidate by its summed model rewards only (no terminal value, no actor). A second
  row gives TorchRL the same model written the common way, one ``torchrl.modules.MLP`` per
  member called in a loop, so the planner and the batched ensemble are timed apart.
* loop_ros, the same work: ``ArcPlanner`` with the PETS-restricted settings (CEM refit, top 20,
  no terminal value, no actor rollouts), 100 candidates x 4 particles x 5 elites;
* loop_ros ARC at the paper's settings (105 candidates with 5 actor rollouts, terminal twin Q
  and the actor): more work than the peer, shown for scale.

The issue's target (#14): >= 3x faster per planning step than the peer at the same budget.

TorchRL does not install next to the project's pins (it needs tensordict, and its own torch
constraint), so this script runs in its own venv::

    python3.11 -m venv .venv-peers
    .venv-peers/bin/pip install torch==2.13.0          # first and alone: the CPU wheel
    .venv-peers/bin/pip install torchrl==0.14.1 "tensordict>=0.14.3,<0.15"
    PYTHONPATH=. .venv-peers/bin/python bench/planner_peer.py --steps 20 --rounds 3

(``loop_ros.core`` needs only torch and numpy.)
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree

from tensordict import TensorDict  # noqa: E402
from tensordict.nn import TensorDictModule  # noqa: E402
from torchrl.data import Bounded, Composite, Unbounded  # noqa: E402
from torchrl.envs.model_based import ModelBasedEnvBase  # noqa: E402
from torchrl.modules.planners import CEMPlanner  # noqa: E402

from loop_ros.core.arc import ArcPlanner  # noqa: E402
from loop_ros.core.config import ArcConfig, EnsembleConfig, SacConfig  # noqa: E402
from loop_ros.core.ensemble import ProbabilisticEnsemble  # noqa: E402
from loop_ros.core.sac import SacAgent  # noqa: E402

from planner import OBS_DIM, ACT_DIM, time_calls  # noqa: E402

HORIZON, ITERATIONS, CANDIDATES, PARTICLES, TOP_K = 3, 5, 100, 4, 20


class EnsembleWorldModel(nn.Module):
    """(B, O), (B, A) -> next obs (B, O), reward (B, 1): B rows split into one slice per
    member, as ARC propagates them."""

    def __init__(self, ensemble: ProbabilisticEnsemble, members: torch.Tensor) -> None:
        super().__init__()
        self.ensemble, self.members = ensemble, members

    def forward(self, obs: torch.Tensor, action: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.members.numel()
        o = obs.reshape(m, -1, obs.shape[-1])
        a = action.reshape(m, -1, action.shape[-1])
        next_obs, reward = self.ensemble.predict(o, a, self.members)
        return next_obs.reshape(obs.shape), reward.reshape(*obs.shape[:-1], 1)


class MemberLoopWorldModel(nn.Module):
    """The same model size written the common way: one ``torchrl.modules.MLP`` per member
    (4x200 SiLU, output [reward, delta obs] mean and log-variance), called member by member
    on its slice of the rows."""

    def __init__(self, members: int) -> None:
        super().__init__()
        from torchrl.modules import MLP
        self.nets = nn.ModuleList(
            MLP(in_features=OBS_DIM + ACT_DIM, out_features=2 * (OBS_DIM + 1), depth=4,
                num_cells=200, activation_class=nn.SiLU) for _ in range(members))

    def forward(self, obs: torch.Tensor, action: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        m = len(self.nets)
        x = torch.cat((obs, action), dim=-1).reshape(m, -1, OBS_DIM + ACT_DIM)
        out = []
        for net, rows in zip(self.nets, x):
            mean, log_var = net(rows).chunk(2, dim=-1)
            out.append(mean + (0.5 * log_var).exp() * torch.randn_like(mean))
        y = torch.cat(out).reshape(*obs.shape[:-1], OBS_DIM + 1)
        return obs + y[..., 1:], y[..., :1]


class EnsembleEnv(ModelBasedEnvBase):
    """TorchRL's model-based env around the ensemble."""

    def __init__(self, world_model: TensorDictModule) -> None:
        super().__init__(world_model, batch_size=torch.Size([]))
        self.observation_spec = Composite(observation=Unbounded((OBS_DIM,)))
        self.state_spec = Composite(observation=Unbounded((OBS_DIM,)))
        self.action_spec = Bounded(-1.0, 1.0, (ACT_DIM,))
        self.reward_spec = Unbounded((1,))

    def _reset(self, tensordict: TensorDict | None = None, **kwargs) -> TensorDict:
        return TensorDict({'observation': torch.zeros(OBS_DIM)}, batch_size=[])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device('cpu')
    ens_cfg, sac_cfg = EnsembleConfig(), SacConfig()
    ensemble = ProbabilisticEnsemble(OBS_DIM, ACT_DIM, ens_cfg, device)
    agent = SacAgent(OBS_DIM, ACT_DIM, sac_cfg, device)
    obs = torch.randn(OBS_DIM)

    rows = ens_cfg.num_elites * CANDIDATES * PARTICLES
    state = TensorDict({'observation': obs}, batch_size=[])

    def peer_step(world_model: nn.Module):
        env = EnsembleEnv(TensorDictModule(world_model, in_keys=['observation', 'action'],
                                           out_keys=['observation', 'reward']))
        peer = CEMPlanner(env, planning_horizon=HORIZON, optim_steps=ITERATIONS,
                          num_candidates=rows, top_k=TOP_K)

        def step() -> None:
            with torch.no_grad():
                peer(state.clone())
        return step

    def arc_step(cfg: ArcConfig):
        planner = ArcPlanner(cfg, OBS_DIM, ACT_DIM, ensemble, actor=agent.actor.mean_action,
                             critic=agent.critic.min_q, device=device)
        return lambda: planner.plan(obs, explore=False)

    same_work = ArcConfig(horizon=HORIZON, num_iterations=ITERATIONS, num_samples=CANDIDATES,
                          num_particles=PARTICLES, num_actor_trajs=0, optimizer='cem',
                          num_cem_elites=TOP_K, value='none', explore='mean')
    version = __import__('torchrl').__version__
    timed = {
        f'TorchRL {version} CEMPlanner, loop_ros ensemble': peer_step(
            EnsembleWorldModel(ensemble, ensemble.elites)),
        f'TorchRL {version} CEMPlanner, one MLP per member': peer_step(
            MemberLoopWorldModel(ens_cfg.num_elites)),
        'loop_ros ArcPlanner, CEM, the same work': arc_step(same_work),
        'loop_ros ARC, paper settings (+actor rows, Q)': arc_step(ArcConfig()),
    }
    results: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(args.rounds):   # interleaved, so a noisy neighbour hits each alike
        for name, fn in timed.items():
            results[name] += time_calls(fn, args.steps, device)
    median = {name: statistics.median(t) for name, t in results.items()}
    peer_ms = next(iter(median.values()))   # the peer with the same model
    print(f'threads={torch.get_num_threads()} H={HORIZON} iterations={ITERATIONS} '
          f'{CANDIDATES} candidates x {PARTICLES} particles x {ens_cfg.num_elites} elites '
          f'= {rows} model rows; ensemble {ens_cfg.num_members}x{ens_cfg.num_layers}x'
          f'{ens_cfg.hidden_size}, obs {OBS_DIM}, act {ACT_DIM}')
    for name, ms in median.items():
        p90 = statistics.quantiles(results[name], n=10)[-1]
        print(f'{name:48s} median {ms:7.1f} ms  p90 {p90:7.1f} ms  peer / this '
              f'{peer_ms / ms:.2f}x')


if __name__ == '__main__':
    main()
