"""``loop-ros demo`` end to end: the real rccar graph and params, stopped early by ``steps``."""
from __future__ import annotations

import json
import math
from pathlib import Path

DEMO_STEPS = 400
"""Past the first model retrain (250 transitions), so the learner has written a checkpoint that
the final evaluation plans with; before exploration ends (500), so the run stays short."""


def test_demo_runs_the_graph_then_evaluates_its_newest_checkpoint(tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv('OMP_NUM_THREADS', '1')   # three torch processes on 2 cores
    from loop_ros.demo import run_demo

    out = tmp_path / 'demo'
    assert run_demo(out=str(out), steps=DEMO_STEPS, minutes=4.0) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['launcher_exit_code'] == 0          # every node stopped cleanly
    assert summary['env_steps'] >= DEMO_STEPS and summary['episodes'] >= 4
    assert summary['wall_s'] < 200.0                   # stopped by steps, not by the budget
    assert summary['planner_ticks'] >= DEMO_STEPS - 10
    assert summary['random_actions'] > 0               # exploration: start_steps is 500
    assert summary['checkpoint_env_steps'] >= 250      # the retrain's checkpoint, evaluated
    assert Path(summary['checkpoint']).parent == out / 'checkpoints'
    assert math.isfinite(summary['eval_return']) and math.isfinite(summary['random_return'])
    for name in ('learning_curve.png', 'episode.gif', 'episode.png', 'launch.log'):
        assert (out / name).stat().st_size > 0, name
    assert 'learner' in (out / 'launch.log').read_text()


def test_demo_starts_fresh_without_an_old_demos_weights(tmp_path: Path) -> None:
    """Old ``policy_*.pt`` in the output are removed before the graph starts (checked by
    stopping at once: the newest checkpoint is then none, and the planner is not evaluated)."""
    from loop_ros.demo import run_demo

    old = tmp_path / 'demo' / 'checkpoints' / 'policy_000007.pt'
    old.parent.mkdir(parents=True)
    old.write_bytes(b'not a checkpoint')
    assert run_demo(out=str(tmp_path / 'demo'), steps=0, minutes=1.0) == 0
    summary = json.loads((tmp_path / 'demo' / 'summary.json').read_text())
    assert not old.exists()
    assert 'checkpoint' not in summary and math.isnan(summary['eval_return'])
    assert math.isfinite(summary['random_return'])

