"""Typed configuration: the one source every other surface is derived from or checked against.

ROS parameters (``loop_ros.ros.params``), the YAML files in ``config/`` and the ``loop-ros`` CLI
all walk these dataclasses. Each field carries ``metadata``:

* ``description``: one line, shown by ``ros2 param describe`` and ``--help``;
* ``range``: ``(low, high)`` inclusive bounds for numbers, or a tuple of allowed strings;
* ``static``: True when the value changes network or other persistent tensor shapes, files or
  the device (read-only at runtime: restart the node). Knobs that only change how the planner
  samples (``arc.num_samples``, ...) are not static: a node applies them between two plans.

Numbers follow ``docs/algorithm.md`` (the paper and the authors' code, sec. 1-3, 7).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterator


def param(default: Any, description: str, range: tuple | None = None, static: bool = False,
          **kwargs: Any) -> Any:
    """Declare a config field with its description, allowed range and static flag."""
    meta = {'description': description, 'range': range, 'static': static}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kwargs)
    return field(default=default, metadata=meta, **kwargs)


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def _check_value(owner: str, f: dataclasses.Field, value: Any) -> None:
    rng = f.metadata.get('range')
    name = f'{owner}.{f.name}'
    if isinstance(f.default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f'{name} must be a bool, got {value!r}')
        return
    if isinstance(f.default, int) and not isinstance(f.default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{name} must be an int, got {value!r}')
    elif isinstance(f.default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{name} must be a number, got {value!r}')
        if not math.isfinite(float(value)):
            raise ConfigError(f'{name} must be finite, got {value!r}')
    elif isinstance(f.default, str):
        if not isinstance(value, str):
            raise ConfigError(f'{name} must be a string, got {value!r}')
    elif isinstance(f.default, tuple):
        if not isinstance(value, (tuple, list)):
            raise ConfigError(f'{name} must be a list, got {value!r}')
        return
    if rng is None:
        return
    if isinstance(value, str):
        if value not in rng:
            raise ConfigError(f'{name} must be one of {list(rng)}, got {value!r}')
    elif not (rng[0] <= value <= rng[1]):
        raise ConfigError(f'{name} must be in [{rng[0]}, {rng[1]}], got {value!r}')


class _Validated:
    """Mixin: validate every field against its metadata after construction."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                continue
            _check_value(type(self).__name__, f, value)
            if isinstance(f.default, float) and isinstance(value, int):
                object.__setattr__(self, f.name, float(value))
            if isinstance(f.default, tuple) and isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; subclasses override."""


@dataclass(frozen=True)
class SacConfig(_Validated):
    """Soft actor-critic (Haarnoja et al. 2018) as in LOOP's reference (spinning-up style)."""

    hidden_sizes: tuple = param((256, 256), 'hidden layer widths of actor and critics', static=True)
    lr: float = param(1e-3, 'Adam learning rate of actor, critics and temperature', (1e-6, 1.0))
    gamma: float = param(0.99, 'discount factor', (0.0, 1.0))
    tau: float = param(0.005, 'Polyak rate: target <- (1-tau)*target + tau*online', (0.0, 1.0))
    batch_size: int = param(256, 'minibatch size of one gradient step', (1, 65536))
    init_alpha: float = param(1.0, 'initial entropy temperature alpha (used when SAC is built)',
                              (1e-8, 1e3), static=True)
    autotune_alpha: bool = param(True, 'learn alpha towards the target entropy')
    target_entropy_scale: float = param(1.0, 'target entropy = -scale * action_dim', (0.0, 100.0))
    backup: str = param('sac', "critic backup: 'sac' (a' ~ pi) or 'sarsa' (buffer's next action)",
                        ('sac', 'sarsa'), static=True)


@dataclass(frozen=True)
class EnsembleConfig(_Validated):
    """PETS probabilistic ensemble predicting mean and log-variance of [reward, delta obs]."""

    num_members: int = param(7, 'ensemble members', (1, 64), static=True)
    num_elites: int = param(5, 'members with the lowest holdout error used for planning',
                            (1, 64), static=True)
    hidden_size: int = param(200, 'width of each hidden layer', (1, 4096), static=True)
    num_layers: int = param(4, 'hidden layers (SiLU)', (1, 16), static=True)
    lr: float = param(1e-3, 'Adam learning rate', (1e-6, 1.0))
    batch_size: int = param(256, 'training minibatch per member', (1, 65536))
    holdout_ratio: float = param(0.2, 'fraction of data held out for early stopping', (0.0, 0.9))
    max_holdout: int = param(5000, 'cap on the holdout set size', (1, 10_000_000))
    patience: int = param(6, 'stop after this many epochs with no member improving', (1, 1000))
    improvement_threshold: float = param(0.01, 'relative holdout improvement that counts',
                                         (0.0, 1.0))
    max_epochs: int = param(50, 'epoch cap per retrain (the reference has none)', (1, 100_000))
    min_log_var: float = param(-10.0, 'soft lower bound of the predicted log-variance',
                               (-50.0, 10.0), static=True)
    max_log_var: float = param(0.5, 'soft upper bound of the predicted log-variance',
                               (-50.0, 10.0), static=True)
    weight_decay_scale: float = param(1.0, 'multiplier on the per-layer L2 decays '
                                      '(2.5, 5, 7.5, 7.5, 10)e-5', (0.0, 1e4))
    learn_reward: bool = param(True, 'predict the reward (False: the task reward function)',
                               static=True)
    learn_cost: bool = param(False, "learn the constraint cost c(s') from the buffer's costs "
                             '(a classifier on the next observation, loop_ros.core.learned_cost) '
                             "and plan safe LOOP with it instead of the task's cost function: "
                             'for tasks without one', static=True)

    def validate(self) -> None:
        if self.num_elites > self.num_members:
            raise ConfigError(f'EnsembleConfig.num_elites ({self.num_elites}) must not exceed '
                              f'num_members ({self.num_members})')
        if self.min_log_var >= self.max_log_var:
            raise ConfigError('EnsembleConfig.min_log_var must be below max_log_var')


@dataclass(frozen=True)
class ArcConfig(_Validated):
    """ARC planner (LOOP sec. 4.2, eq. 6-8) and its baselines and variants (sec. 5).

    ``optimizer='arc'`` is iterative importance sampling (softmax weights over all candidates);
    ``'cem'`` refits to the top ``num_cem_elites`` (LOOP without ARC). ``value='q'`` adds the
    critic's terminal value; ``'none'`` gives PETS-restricted planning. ``cost_limit >= 0``
    turns on safe LOOP (eq. 10; ``docs/algorithm.md``).
    """

    horizon: int = param(3, 'planning horizon H (actions per sequence)', (1, 100), static=True)
    num_samples: int = param(100, 'Gaussian candidate sequences per iteration N', (1, 100_000))
    num_actor_trajs: int = param(5, 'actor-prior rollouts added to the candidates', (0, 10_000))
    num_particles: int = param(4, 'stochastic copies of each candidate per member', (1, 64))
    num_iterations: int = param(5, 'importance-sampling iterations per plan', (1, 100))
    temperature: float = param(1.0, 'kappa: weights are softmax(kappa * score)', (1e-6, 1e6))
    var_momentum: float = param(0.1, 'var <- m * var_old + (1 - m) * var_new', (0.0, 1.0))
    init_std: float = param(0.5, 'std of the sampling distribution at each step (normalised '
                            'actions in [-1, 1])', (1e-4, 10.0))
    truncation: float = param(2.0, 'sample a truncated normal within +-truncation sigma',
                              (0.1, 10.0))
    optimizer: str = param('arc', "'arc' (softmax importance sampling) or 'cem' (top-k refit)",
                           ('arc', 'cem'))
    num_cem_elites: int = param(20, 'elites refit by the CEM optimizer', (1, 100_000))
    value: str = param('q', "terminal value: 'q' (critic) or 'none' (PETS-restricted)",
                       ('q', 'none'))
    scoring: str = param('paper', "'paper': sum_t<H gamma^t r_t + gamma^H Q(s_H, pi(s_H)); "
                         "'reference': sum_t<H-1 r_t + Q1(s_H-1, a_H-1) (with value 'none': "
                         "sum_t<H r_t)", ('paper', 'reference'))
    gamma: float = param(0.99, 'discount of the paper scoring', (0.0, 1.0))
    rollout: str = param('sample', "model steps in planning: 'sample' (mean + std * eps, the "
                         "reference) or 'mean' (the predicted mean: particles would coincide, so "
                         "one is rolled out per member)", ('sample', 'mean'))
    explore: str = param('sample', "training action: 'sample' (a candidate drawn by its weight, "
                         "the reference) or 'mean' (the weighted mean, as in evaluation)",
                         ('sample', 'mean'))
    prior: str = param('mixture', "first candidates of a plan: 'mixture' (N Gaussian sequences "
                       'around the shifted previous plan + the actor rollouts, online LOOP) or '
                       "'policy' (N rollouts of the actor through random elites, each action plus "
                       'N(0, policy_noise^2): offline LOOP, the beta = 1 prior)',
                       ('mixture', 'policy'))
    policy_noise: float = param(0.3, "sigma of the Gaussian noise on the actor's actions of the "
                                "'policy' prior", (0.0, 10.0))
    noise_clip: str = param('execution', "where the 'policy' prior's noisy actions are clipped to "
                            "[-1, 1]: 'execution' (only the imagined and the executed action; the "
                            "refit averages the unclipped candidates, so equal weights execute the "
                            "actor) or 'candidates' (each candidate, the reference: the average "
                            "of clipped noise pulls saturated actions towards 0)",
                            ('execution', 'candidates'))
    policy_noise_sampling: str = param('iid', "how the 'policy' prior draws its noise: 'iid' (each "
                                       "candidate its own eps, the paper) or 'mirrored' (pairs "
                                       'that share one actor rollout, one with +eps and one with '
                                       '-eps; an odd N adds the rollout without noise): equal '
                                       'weights then execute the actor exactly, and the refit '
                                       'moves only by the score differences within pairs',
                                       ('iid', 'mirrored'))
    elites_only: bool = param(True, 'roll out and score only the elite members', static=True)
    pessimism: float = param(0.0, 'beta: score = mean - beta * std over members (offline LOOP)',
                             (0.0, 100.0))
    cost_limit: float = param(-1.0, 'd0 of safe LOOP (eq. 10): a candidate is feasible when the '
                              'worst case over members and particles of its horizon cost is <= '
                              'd0; negative disables the constraint', (-1.0, 1e9))
    min_feasible: int = param(10, 'safe LOOP: fewer feasible candidates refit towards low cost',
                              (1, 100_000))
    cost_discounted: bool = param(True, 'safe LOOP horizon cost: sum_t<H gamma^t c_t with '
                                  'arc.gamma (eq. 10); false: the undiscounted sum_t<H c_t (the '
                                  "authors' code)")


@dataclass(frozen=True)
class TrainConfig(_Validated):
    """The online training loop (reference ``train_loop_sac.py``, spec sec. 7)."""

    algo: str = param('loop', 'which agent: loop, sac, pets, loop-cem, loop-sarsa, '
                      'loop-offline (pessimistic ARC around an offline policy: loop-ros '
                      'train-offline), safe-loop or safe-pets (LOOP or PETS-restricted under '
                      'the cost constraint arc.cost_limit, d0 = 0.2 unless set)',
                      ('loop', 'sac', 'pets', 'loop-cem', 'loop-sarsa', 'loop-offline',
                       'safe-loop', 'safe-pets'),
                      static=True)
    total_steps: int = param(5000, 'environment steps to train for', (1, 100_000_000))
    start_steps: int = param(-1, 'uniform-random steps first (-1: the task default)',
                             (-1, 100_000_000))
    model_train_every: int = param(250, 'retrain the ensemble every this many env steps',
                                   (1, 100_000_000))
    sac_update_every: int = param(50, 'run SAC updates in bursts every this many env steps '
                                  '(1: every step)', (1, 100_000))
    updates_per_step: float = param(1.0, 'SAC gradient steps per env step (update-to-data)',
                                    (0.0, 100.0))
    eval_every: int = param(1000, 'evaluate every this many env steps (0: only at the end)',
                            (0, 100_000_000))
    eval_episodes: int = param(1, 'planner (eval-mode ARC) episodes per evaluation', (0, 1000))
    actor_eval_episodes: int = param(5, 'actor-only episodes per evaluation', (0, 1000))
    checkpoint_every: int = param(0, 'also write checkpoints/step_<N>.pt every this many env '
                                  'steps, for loop-ros eval (0: only final.pt)',
                                  (0, 100_000_000))
    buffer_capacity: int = param(1_000_000, 'replay buffer size (transitions)',
                                 (1, 100_000_000), static=True)
    seed: int = param(0, 'seed of torch, numpy and the environment', (0, 2**31 - 1))
    device: str = param('auto', "'auto' (CUDA when present), 'cpu' or 'cuda[:i]'", static=True)


@dataclass(frozen=True)
class LoopConfig(_Validated):
    """Everything one LOOP agent needs, grouped as the ROS parameter namespaces are."""

    sac: SacConfig = field(default_factory=SacConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    arc: ArcConfig = field(default_factory=ArcConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class OfflineConfig(_Validated):
    """Offline training from a Transition bag (``loop-ros train-offline``; paper sec. 4.3).

    CRR (Wang et al. 2020): critic by TD with a' ~ pi(s'); actor by advantage-weighted
    regression on dataset actions, weight f(A) with A(s, a) = Q(s, a) - mean_j Q(s, a_j),
    a_j ~ pi(s): ``exp`` f = min(exp(A / beta), max_weight), ``binary`` f = 1[A > 0].
    """

    base: str = param('crr', 'offline algorithm that learns the policy and critic', ('crr',),
                      static=True)
    updates: int = param(100_000, 'gradient steps of the offline policy and critic',
                         (1, 100_000_000))
    batch_size: int = param(256, 'minibatch size', (1, 65536))
    actor_lr: float = param(3e-4, 'Adam learning rate of the actor', (1e-7, 1.0))
    critic_lr: float = param(3e-4, 'Adam learning rate of the critic', (1e-7, 1.0))
    crr_beta: float = param(1.0, 'temperature beta of the exp advantage weight (the CRR '
                            "paper's 1; larger moves towards behaviour cloning: 10 on the "
                            'MuJoCo datasets, docs/offline_results.md)', (1e-6, 1e6))
    crr_weight: str = param('exp', "advantage weight: 'exp' or 'binary'", ('exp', 'binary'))
    crr_max_weight: float = param(20.0, 'clip of the exp advantage weight', (1.0, 1e6))
    crr_samples: int = param(4, 'actions sampled from pi to estimate V(s) = mean Q(s, a_j)',
                             (1, 1024))
    value_updates: int = param(0, 'critic-only steps after CRR: fitted Q evaluation of the '
                               "final deterministic actor, y = r + gamma min Q'(s', tanh(mu(s'))) "
                               '(the value offline ARC bootstraps with; 0: CRR\'s own critic)',
                               (0, 100_000_000))
    holdout_ratio: float = param(0.1, 'fraction of transitions held out to report the '
                                 "ensemble's one-step error", (0.01, 0.5))
    model_epochs: int = param(100, 'epoch cap of the ensemble fit on the dataset (early '
                              'stopping on its own holdout may end it sooner)', (1, 100_000))
    seed: int = param(0, 'seed of torch, numpy and the data split', (0, 2**31 - 1))


@dataclass(frozen=True)
class DatasetConfig(_Validated):
    """D4RL-style datasets made by the project (``loop-ros dataset``).

    SAC trains on the env until its deterministic actor's mean evaluation return reaches
    ``target_return``; ``medium``: ``size`` transitions of that policy's own (stochastic)
    rollouts; ``medium-replay``: every transition SAC collected up to then.
    """

    target_return: float = param(0.0, "stop SAC when the actor's mean evaluation return reaches "
                                 "this (0: the task's medium_return, a third of the expert's)",
                                 (-1e9, 1e9))
    max_steps: int = param(300_000, 'cap on SAC environment steps (the bag says whether the '
                           'target was reached)', (1, 100_000_000))
    eval_every: int = param(5000, 'evaluate the actor every this many SAC steps',
                            (1, 100_000_000))
    eval_episodes: int = param(5, 'deterministic actor episodes per evaluation', (1, 1000))
    size: int = param(100_000, "transitions of a 'medium' dataset", (1, 100_000_000))
    stochastic: bool = param(True, "'medium' rollouts sample the SAC policy (False: its mean)")


def iter_fields(cfg_type: type) -> Iterator[dataclasses.Field]:
    """The fields of a config dataclass (not nested groups)."""
    for f in dataclasses.fields(cfg_type):
        if not (isinstance(f.default_factory, type)  # type: ignore[misc]
                and dataclasses.is_dataclass(f.default_factory)):
            yield f


def groups(cfg: type = LoopConfig) -> dict[str, type]:
    """Name -> dataclass type of each group of ``LoopConfig`` (``sac``, ``ensemble``, ...)."""
    return {f.name: f.default_factory for f in dataclasses.fields(cfg)}  # type: ignore[misc]


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists, ready for YAML/JSON)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def from_dict(cfg_type: type, data: dict[str, Any] | None, where: str = 'config') -> Any:
    """Build a (nested) config from a dict; unknown keys are an error, missing keys default."""
    data = dict(data or {})
    known = {f.name: f for f in dataclasses.fields(cfg_type)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {unknown} for {cfg_type.__name__}; '
                          f'known: {sorted(known)}')
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = known[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if isinstance(sub, type) and dataclasses.is_dataclass(sub):
            if not isinstance(value, dict):
                raise ConfigError(f'{where}.{name} must be a mapping, got {value!r}')
            kwargs[name] = from_dict(sub, value, f'{where}.{name}')
        else:
            kwargs[name] = value
    return cfg_type(**kwargs)


def _deep_merge(base: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def merge_dict(cfg: Any, data: dict[str, Any] | None, where: str = 'config') -> Any:
    """``cfg`` with the (nested) values of ``data`` on top, checked as :func:`from_dict` checks."""
    return from_dict(type(cfg), _deep_merge(to_dict(cfg), dict(data or {})), where)


def with_presets(presets: dict[str, Any], cfg_type: type | None = None) -> Any:
    """The defaults of ``cfg_type`` (``LoopConfig``) with a task's per-env presets applied.

    Layering everywhere (CLI, ROS nodes): dataclass defaults < task presets
    (``Task.hyperparameters``) < config file / ROS parameter overrides < CLI options.
    """
    cfg_type = cfg_type or LoopConfig
    try:
        return replace(cfg_type(), **presets)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f'invalid task presets {presets!r}: {exc}') from None


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that accepts dotted keys for nested groups (``arc.horizon``)."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition('.')
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[key] = value
    for head, sub in nested.items():
        flat[head] = replace(getattr(cfg, head), **sub)
    return dataclasses.replace(cfg, **flat)


def markdown_tables(cfg_type: type = LoopConfig, prefix: str = '') -> str:
    """Parameter reference (name, default, range, static, description) as Markdown tables."""
    lines: list[str] = []
    nested = {f.name: f.default_factory for f in dataclasses.fields(cfg_type)
              if isinstance(f.default_factory, type)  # type: ignore[misc]
              and dataclasses.is_dataclass(f.default_factory)}
    own = list(iter_fields(cfg_type))
    if own:
        lines += [f'### `{prefix.rstrip(".") or cfg_type.__name__}` ({cfg_type.__name__})', '',
                  (cfg_type.__doc__ or '').strip().splitlines()[0], '',
                  '| parameter | default | range | static | description |',
                  '|---|---|---|---|---|']
        for f in own:
            rng = f.metadata.get('range')
            rng_text = '' if rng is None else (
                ', '.join(f'`{r}`' for r in rng) if isinstance(rng[0], str)
                else f'[{rng[0]}, {rng[1]}]')
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            desc = f.metadata['description'].replace('|', '\\|')
            lines.append(f'| `{prefix}{f.name}` | `{default}` | {rng_text} | '
                         f'{"yes" if f.metadata.get("static") else ""} | {desc} |')
        lines.append('')
    for name, sub in nested.items():
        lines.append(markdown_tables(sub, f'{prefix}{name}.'))
    return '\n'.join(lines)


def static_changes(old: Any, new: Any, prefix: str) -> list[str]:
    """Dotted names of the static fields of a config group that differ between two values."""
    return [f'{prefix}.{f.name}' for f in dataclasses.fields(type(old))
            if f.metadata.get('static') and getattr(old, f.name) != getattr(new, f.name)]


def check_static_unchanged(old: Any, new: Any, prefix: str, rebuild: str) -> None:
    """ValueError naming the static fields ``new`` changes (``rebuild``: what to rebuild)."""
    changed = static_changes(old, new, prefix)
    if changed:
        raise ValueError(f'{", ".join(changed)} is static: rebuild {rebuild} to change it')
