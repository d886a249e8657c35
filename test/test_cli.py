"""loop-ros CLI configuration layering: defaults < task presets < config file < options."""
from __future__ import annotations

import pytest

from loop_ros.cli import build_parser
from loop_ros.cli import config_from_args
from loop_ros.core.config import ArcConfig
from loop_ros.core.config import ConfigError
from loop_ros.core.config import with_presets
from loop_ros.core.tasks import get_task
from loop_ros.core.tasks import registered_tasks

PENDULUM = 'InvertedPendulum-v5'


def config(*argv: str):
    return config_from_args(build_parser().parse_args(['train', *argv]))


def test_task_preset_replaces_the_default():
    preset = get_task(PENDULUM).hyperparameters['arc.horizon']
    assert preset != ArcConfig().horizon
    assert config('--env', PENDULUM).arc.horizon == preset
    assert config('--env', 'HalfCheetah-v5').arc.horizon == ArcConfig().horizon


def test_config_file_and_options_win_over_the_preset(tmp_path):
    path = tmp_path / 'cfg.yaml'
    path.write_text('arc:\n  horizon: 5\n  temperature: 2.0\n')
    cfg = config('--env', PENDULUM, '--config', str(path))
    assert (cfg.arc.horizon, cfg.arc.temperature) == (5, 2.0)
    cfg = config('--env', PENDULUM, '--config', str(path), '--arc.horizon', '3')
    assert (cfg.arc.horizon, cfg.arc.temperature) == (3, 2.0)
    assert config('--env', PENDULUM, '--arc.horizon', '3').arc.horizon == 3


def test_bad_config_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('arc:\n  horizonn: 5\n')
    with pytest.raises(ConfigError, match=r'bad\.yaml.*horizonn'):
        config('--env', PENDULUM, '--config', str(path))


@pytest.mark.parametrize('env_id', registered_tasks())
def test_every_registered_preset_is_a_valid_config(env_id):
    task = get_task(env_id)
    for presets in (task.hyperparameters, {**task.hyperparameters, **task.offline_hyperparameters}):
        cfg = with_presets(presets)
        for key, value in presets.items():
            group, name = key.split('.')
            assert getattr(getattr(cfg, group), name) == value


def offline_config(*argv: str):
    return config_from_args(build_parser().parse_args(['train-offline', '--bag', 'b', *argv]),
                            offline=True)


def test_offline_training_layers_the_env_offline_presets_over_offline_loops():
    from loop_ros.core.agent import OFFLINE_PRESETS
    hopper = get_task('Hopper-v5').offline_hyperparameters['arc.policy_noise']
    assert hopper != OFFLINE_PRESETS['arc.policy_noise']
    assert offline_config('--env', 'Hopper-v5').arc.policy_noise == hopper
    assert offline_config('--env', 'Hopper-v5').arc.horizon == OFFLINE_PRESETS['arc.horizon']
    assert (offline_config('--env', 'loop_ros/RCCarCircle-v0').arc.policy_noise
            == OFFLINE_PRESETS['arc.policy_noise'])
    assert offline_config('--env', 'Hopper-v5', '--arc.policy_noise', '0.5').arc.policy_noise == 0.5
    # online training never sees them
    assert config('--env', 'Hopper-v5').arc.policy_noise == ArcConfig().policy_noise


def test_invalid_preset_is_refused():
    with pytest.raises(ConfigError, match='task presets'):
        with_presets({'arc.horizon': 0})
    with pytest.raises(ConfigError, match='task presets'):
        with_presets({'arc.no_such_field': 1})


def test_bad_env_ids_exit_with_a_clear_error(tmp_path, capsys):
    from loop_ros.cli import main
    for env_id, match in (('NoSuchEnv-v0', 'cannot make env'),
                          ('CartPole-v1', '1-D Box action space')):
        with pytest.raises(SystemExit) as exit_info:
            main(['train', '--env', env_id, '--steps', '1', '--out', str(tmp_path)])
        assert exit_info.value.code == 2
        assert match in capsys.readouterr().err


def test_make_env_normalises_actions():
    from loop_ros.envs import make_env
    env = make_env(PENDULUM, seed=0)
    assert (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    assert env.unwrapped.action_space.high[0] == 3.0     # the pendulum's own bound
    env.close()
