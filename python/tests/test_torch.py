"""sublet.torch checkpoints and sublet.rank's agreement, with real PyTorch
(CPU, gloo) in real processes."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from sublet import rank
from sublet.errors import SubletError
from sublet.torch import Checkpointer, ModelState, step_dir_name

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dist_helper.py")


def run_group(tmp_path, world, scenario, *args):
    """Runs dist_helper.py as a gloo group of `world` processes; their results."""
    # A FileStore for the rendezvous: no port to probe (gloo's own
    # connections bind port 0).
    store = tmp_path / f"store-{scenario}-{world}"
    procs, outs = [], []
    for r in range(world):
        out = tmp_path / f"{scenario}-{world}-{r}.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLET_")}
        env.update(RANK=str(r), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                   DIST_INIT_METHOD=f"file://{store}",
                   LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(world))
        procs.append(subprocess.Popen([sys.executable, HELPER, scenario, str(out), *args], env=env))
        outs.append(out)
    for p in procs:
        assert p.wait(timeout=120) == 0
    return [json.loads(o.read_text()) for o in outs]


def test_every_rank_agrees_to_preempt_at_the_same_call_when_one_got_the_notice(tmp_path):
    results = run_group(tmp_path, 3, "agree")
    for r in results:
        assert r["answers"] == [False, True, True], r


def test_a_checkpoint_saved_by_two_ranks_resumes_on_one_and_on_three(tmp_path):
    ck = str(tmp_path / "ck")
    saved = run_group(tmp_path, 2, "save", ck, "40")
    assert saved[0]["params"] == saved[1]["params"]  # DDP: replicated
    for world in (1, 3):
        for r in run_group(tmp_path, world, "load", ck):
            assert r["step"] == 40
            assert r["extra"] == {"cursor": 400}
            assert r["params"] == saved[0]["params"]  # bit for bit
            assert any(abs(x) > 0 for m in r["momentum"] for x in m)  # optimizer state too


def small_state(seed=0):
    torch.manual_seed(seed)
    m = nn.Linear(4, 3)
    return m, {"app": ModelState(m, extra={"seed": seed})}


def test_save_commits_then_reports_and_load_takes_the_newest(tmp_path, monkeypatch):
    reported = []

    def report(step, size, persist_s):
        # Reported only once the step is committed on disk.
        assert os.path.isfile(tmp_path / step_dir_name(step) / "COMMIT")
        reported.append((step, size))
        return True

    monkeypatch.setattr(rank, "report_checkpoint", report)
    ck = Checkpointer(str(tmp_path), every_steps=10, keep=0)
    assert ck.load(small_state()[1]) is None  # nothing yet
    m, state = small_state(1)
    assert not ck.maybe_save(5, state)
    assert ck.maybe_save(10, state)
    ck.save(12, state)
    assert ck.committed_steps() == [10, 12]
    assert [s for s, _ in reported] == [10, 12] and all(b > 0 for _, b in reported)
    m2, state2 = small_state(2)
    assert ck.load(state2) == 12
    assert torch.equal(m2.weight, m.weight) and state2["app"].extra == {"seed": 1}


def test_keep_prunes_old_steps_and_partial_saves_are_never_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(rank, "report_checkpoint", lambda *a: True)
    # What a rank killed mid-save leaves: a temporary directory, and a step
    # directory without COMMIT (renamed by hand, say).
    (tmp_path / ".step-00000090.tmp-3").mkdir()
    (tmp_path / step_dir_name(99)).mkdir()
    ck = Checkpointer(str(tmp_path), every_steps=0, keep=2)
    _, state = small_state()
    for step in (10, 20, 30):
        ck.save(step, state)
    assert ck.committed_steps() == [20, 30]
    assert not (tmp_path / ".step-00000090.tmp-3").exists()
    assert ck.latest() == 30
    with pytest.raises(SubletError, match="no committed checkpoint of step 99"):
        ck.load(state, step=99)


def test_saving_the_same_step_again_replaces_it(tmp_path, monkeypatch):
    monkeypatch.setattr(rank, "report_checkpoint", lambda *a: True)
    ck = Checkpointer(str(tmp_path), every_steps=0, keep=0)
    m, state = small_state(1)
    ck.save(7, state)
    with torch.no_grad():
        m.weight.add_(1.0)
    ck.save(7, state)
    m2, state2 = small_state(5)
    assert ck.load(state2) == 7 and torch.equal(m2.weight, m.weight)
    assert [n for n in os.listdir(tmp_path) if not n.startswith("step-")] == []


def test_a_checkpointer_needs_a_directory(monkeypatch):
    monkeypatch.delenv("SUBLET_CHECKPOINT_DIR", raising=False)
    monkeypatch.delenv("SUBLET_CONTROL", raising=False)
    with pytest.raises(SubletError, match="no checkpoint directory"):
        Checkpointer()
