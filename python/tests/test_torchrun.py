"""sublet.torchrun run for real (torchrun --standalone on this machine):
what its workers see and the exit code it gives the worker."""

import json
import os
import subprocess
import sys

WORKER = """
import json, os, sys
keys = ["RANK", "GROUP_RANK", "ROLE_RANK", "LOCAL_RANK", "WORLD_SIZE",
        "TORCHELASTIC_RESTART_COUNT"]
with open(os.path.join(sys.argv[1], "rank-" + os.environ["RANK"]), "w") as f:
    json.dump({k: os.environ.get(k) for k in keys}, f)
sys.exit(int(sys.argv[2]))
"""


def run_wrapper(tmp_path, code, **env):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    full = {k: v for k, v in os.environ.items() if not k.startswith("SUBLET_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sublet.torchrun", "--standalone", "--nproc-per-node=2",
         str(script), str(tmp_path), str(code)],
        env=full, capture_output=True, text=True, timeout=120)


def seen(tmp_path):
    return [json.loads((tmp_path / f"rank-{r}").read_text()) for r in (0, 1)]


def test_under_sublet_the_restart_count_is_sublets_and_exit_75_is_the_nodes(tmp_path):
    # SUBLET_CONTROL marks a rank of the service; the workers here never use it.
    done = run_wrapper(tmp_path, 75, SUBLET_CONTROL="ipc:///nonexistent", SUBLET_ATTEMPT="3")
    assert done.returncode == 75, done.stderr[-2000:]
    for r, env in enumerate(seen(tmp_path)):
        assert env["RANK"] == str(r) and env["LOCAL_RANK"] == str(r)
        assert env["GROUP_RANK"] == "0" and env["ROLE_RANK"] == str(r)
        assert env["WORLD_SIZE"] == "2"
        assert env["TORCHELASTIC_RESTART_COUNT"] == "2"  # the third attempt


def test_by_hand_it_is_plain_torchrun(tmp_path):
    done = run_wrapper(tmp_path, 0)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [env["TORCHELASTIC_RESTART_COUNT"] for env in seen(tmp_path)] == ["0", "0"]


def test_a_crashing_worker_gives_its_own_code(tmp_path):
    done = run_wrapper(tmp_path, 3, SUBLET_CONTROL="ipc:///nonexistent", SUBLET_ATTEMPT="1")
    assert done.returncode == 3
