"""PyTorch jobs on a real cluster (sublet-coordinator, two sublet-worker
nodes of two emulated GPUs, on loopback), driven through sublet.Client:
ranks are real DDP processes on CPU (gloo) using the SDK."""

import json
import os
import subprocess

import pytest

from cluster import REPO, VENV_PYTHON, Cluster, binaries_built
from sublet import SubletError

pytestmark = pytest.mark.skipif(not binaries_built(), reason="build/bin has no daemons")

TRAIN = os.path.join(REPO, "examples", "torch", "train_ddp.py")


@pytest.fixture
def cluster():
    c = Cluster(workers=2, gpus=2)
    yield c
    c.close()


def spec(log, steps, nodes=2, extra_args=(), **fields):
    s = {"name": "ddp", "resources": {"nodes": nodes, "gpus_per_node": 2},
         "checkpoint": {"every_steps": 10, "keep": 3},
         "command": [VENV_PYTHON, TRAIN, "--steps", str(steps), "--log-json", log,
                     *extra_args]}
    s.update(fields)
    return s


def records(log):
    with open(log) as f:
        return [json.loads(line) for line in f]


def reference_losses(tmp_path, steps):
    """The uninterrupted run, one process, no Sublet."""
    log = tmp_path / "reference.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLET_")}
    subprocess.run([VENV_PYTHON, TRAIN, "--steps", str(steps), "--log-json", str(log),
                    "--checkpoint-dir", str(tmp_path / "ref-ck")], env=env, check=True,
                   timeout=300)
    return {r["step"]: r["loss"] for r in records(log) if "loss" in r}


def events(job, kind):
    return [e["message"] for e in job["events"] if e["kind"] == kind]


def test_client_drives_a_whole_job_and_sees_only_its_own(cluster):
    acme, globex, admin = cluster.client(), cluster.client("globex-token"), \
        cluster.client("admin-token")
    assert "acme-token" not in repr(acme)
    job = acme.submit({"name": "hello", "resources": {"nodes": 1, "gpus_per_node": 1},
                       "command": ["/bin/sh", "-c", "echo hello from $SUBLET_RANK"]})
    assert job in [j["id"] for j in acme.jobs()]
    done = acme.wait(job, timeout=60)
    assert done["state"] == "succeeded", done
    assert acme.logs(job) == b"hello from 0\n"
    # Another tenant can neither see nor cancel it, nor read its logs.
    for call in (lambda: globex.show(job), lambda: globex.cancel(job),
                 lambda: globex.logs(job)):
        with pytest.raises(SubletError) as e:
            call()
        assert e.value.code == "NOT_FOUND"
    assert job not in [j["id"] for j in globex.jobs()]
    # A bad spec is refused naming the field; a tenant cannot reclaim.
    with pytest.raises(SubletError, match="resources.gpus_per_node") as e:
        acme.submit({"name": "x", "command": ["true"], "resources": {"gpus_per_node": -1}})
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(SubletError) as e:
        acme.reclaim(nodes=["node-0"], deadline="1m")
    assert e.value.code == "PERMISSION_DENIED"
    # A long job, cancelled.
    sleeper = acme.submit({"name": "sleep", "resources": {"nodes": 1, "gpus_per_node": 1},
                           "command": ["/bin/sleep", "600"]})
    acme.wait(sleeper, states=("running",), timeout=60)
    acme.cancel(sleeper)
    assert acme.wait(sleeper, timeout=60)["state"] == "cancelled"
    # The admin takes a node back and gives it back.
    r = admin.reclaim(nodes=["node-1"], deadline="1m", reason="sdk test")
    assert r["requested_nodes"] == ["node-1"]
    cluster.poll(lambda: admin.reclaims(r["id"])[0]["state"] == "reclaimed", 60, "the reclaim")
    admin.release(reclaim_id=r["id"])
    cluster.wait_for_ready_nodes(2)
    # A wrong coordinator key fails instead of talking to an impostor.
    other = cluster.client()
    other.coordinator_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
    other.timeout = 2
    with pytest.raises(SubletError) as e:
        other.jobs()
    assert e.value.code == "UNAVAILABLE"


@pytest.mark.parametrize("launcher", ["", "torchrun"])
def test_a_reclaimed_ddp_job_acknowledges_its_step_and_resumes_on_one_node(cluster, tmp_path,
                                                                           launcher):
    steps = 60
    reference = reference_losses(tmp_path, steps)
    acme, admin = cluster.client(), cluster.client("admin-token")
    log = os.path.join(cluster.shared, "reclaimed.jsonl")
    fields = {"launcher": launcher} if launcher else {}
    job = acme.submit(spec(log, steps, extra_args=["--min-step-s", "0.05"],
                           elastic={"min_nodes": 1}, **fields))
    cluster.poll(lambda: (acme.show(job)["progress"] or {}).get("step", -1) >= 15, 120,
                 "step 15")
    admin.reclaim(nodes=["node-1"], deadline="2m", reason="mid-run")
    done = acme.wait(job, timeout=300)
    assert done["state"] == "succeeded", done
    assert (done["preemptions"], done["restarts"], done["attempt"]) == (1, 0, 2)
    log_records = records(log)
    preempted = [r for r in log_records if r.get("event") == "preempted"]
    assert len(preempted) == 1
    acked = preempted[0]["step"]
    # The step the ranks committed is the one acknowledged and resumed from.
    assert any(f"checkpoint step {acked} acknowledged" in m for m in events(done, "stopped")
               + events(done, "acknowledged") + events(done, "requeued")), done["events"]
    resumes = [r for r in log_records if r.get("event") == "resume"]
    assert resumes == [{"event": "resume", "step": acked, "world_size": 2, "attempt": 2}]
    assert any(f"resumes from checkpoint step {acked}" in m for m in events(done, "started"))
    # Elastic: the second attempt ran on the one node left.
    assert any("elastic: 1 of 2 nodes" in m for m in events(done, "started"))
    # The loss curve continues the uninterrupted run's, at world size 2.
    after = [r for r in log_records if "loss" in r and r["world_size"] == 2]
    assert [r["step"] for r in after] == list(range(acked + 1, steps + 1))
    for r in after:
        assert r["loss"] == pytest.approx(reference[r["step"]], rel=1e-4, abs=1e-6)
    # Every rank reported the step it checkpointed at: nothing after the
    # commit is lost work (the teardown is not).
    print(f"\n{launcher or 'per-GPU'}: reclaimed at step {acked}: "
          f"gpu_seconds_lost={done['gpu_seconds_lost']:.3f} "
          f"over 4 ranks, gpu_seconds={done['gpu_seconds']:.1f}")
    assert done["gpu_seconds_lost"] == 0


def test_a_crashing_rank_restarts_the_gang_from_the_last_checkpoint(cluster):
    acme = cluster.client()
    log = os.path.join(cluster.shared, "crash.jsonl")
    job = acme.submit(spec(log, 40, extra_args=["--crash-at-step", "25"], max_restarts=2))
    done = acme.wait(job, timeout=300)
    assert done["state"] == "succeeded", done
    assert (done["restarts"], done["preemptions"]) == (1, 0)
    assert any("resumes from step 20" in m for m in events(done, "restarting")), done["events"]
    assert any("resumes from checkpoint step 20" in m for m in events(done, "started"))
    resumes = [r for r in records(log) if r.get("event") == "resume"]
    assert [r["step"] for r in resumes] == [20]


def processes_with(marker):
    """Pids of the processes whose command line holds `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_a_torchrun_job_that_ignores_the_notice_leaves_no_process_after_the_deadline(cluster):
    acme, admin = cluster.client(), cluster.client("admin-token")
    log = os.path.join(cluster.shared, "hung-torchrun.jsonl")
    job = acme.submit(spec(log, 100000, extra_args=["--ignore-preemption", "--min-step-s", "0.05"],
                           launcher="torchrun"))
    cluster.poll(lambda: (acme.show(job)["progress"] or {}).get("step", -1) >= 3, 120, "step 3")
    assert len(processes_with(log)) >= 6  # 2 torchruns and their 4 workers
    admin.reclaim(nodes=["node-0", "node-1"], deadline="3s", reason="deadline test")
    done = cluster.poll(lambda: (lambda j: j if j["state"] == "pending" and
                                 events(j, "preempt_killed") else None)(acme.show(job)),
                        120, "the requeue after the deadline")
    assert done["restarts"] == 0 and done["preemptions"] == 1
    # Every rank has exited and its sandbox is gone: nothing torchrun started
    # is left, neither the launchers nor their workers.
    assert processes_with(log) == []
    acme.cancel(job)
