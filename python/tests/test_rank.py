"""sublet.rank against a stand-in worker: a ZeroMQ ROUTER on an ipc endpoint
that decodes what the rank sends and sends notices back, as worker.cc does."""

import math
import os
import signal

import pytest
import zmq

from sublet import _wire, rank
from sublet.errors import SubletError


@pytest.fixture
def worker(tmp_path, monkeypatch):
    """A control endpoint and a rank environment pointing at it."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    endpoint = f"ipc://{tmp_path}/control.sock"
    router.bind(endpoint)
    env = {"SUBLET_CONTROL": endpoint, "SUBLET_CONTROL_TOKEN": "tok123",
           "SUBLET_JOB_ID": "7", "SUBLET_ATTEMPT": "2", "SUBLET_RANK": "1",
           "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "SUBLET_CHECKPOINT_DIR": str(tmp_path / "ck"), "SUBLET_CHECKPOINT_EVERY": "5",
           "SUBLET_CHECKPOINT_KEEP": "2", "SUBLET_NNODES": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    fresh = rank._Rank()
    monkeypatch.setattr(rank, "_rank", fresh)
    yield router
    fresh.flush()
    router.close(linger=0)
    ctx.term()


def receive(router):
    assert router.poll(5000), "the rank sent nothing"
    peer, frame = router.recv_multipart()
    reader, which = _wire.decode(frame)
    assert which == "rankProgress"
    return peer, reader


def notice(router, job=7, attempt=2, rank_=1, deadline_ms=1_900_000_000_000, peer=b"rtok123"):
    e = _wire.envelope("")
    n = e.body.init("preemptNotice")
    n.key.jobId, n.key.attempt, n.key.rank = job, attempt, rank_
    n.deadlineUnixMs = deadline_ms
    n.reason = "reclaim 3 by infra"
    router.send_multipart([peer, e.to_bytes()])


def test_identity_outside_sublet_is_a_single_process(monkeypatch):
    for k in list(os.environ):
        if k.startswith("SUBLET_") or k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            monkeypatch.delenv(k)
    me = rank.identity()
    assert (me.job_id, me.rank, me.world_size, me.checkpoint_dir) == (0, 0, 1, None)
    assert not rank.under_sublet()
    assert rank.report_progress(3, loss=1.0) is False  # nowhere to go, no error


def test_identity_names_a_missing_or_malformed_variable():
    base = {"SUBLET_CONTROL": "ipc:///nowhere", "SUBLET_CONTROL_TOKEN": "t",
            "SUBLET_JOB_ID": "7", "SUBLET_ATTEMPT": "1", "SUBLET_RANK": "0"}
    with pytest.raises(SubletError, match="SUBLET_CONTROL is set but SUBLET_CONTROL_TOKEN"):
        rank.identity({**base, "SUBLET_CONTROL_TOKEN": ""})
    with pytest.raises(SubletError, match="SUBLET_JOB_ID: 'seven' is not a number"):
        rank.identity({**base, "SUBLET_JOB_ID": "seven"})
    with pytest.raises(SubletError, match="SUBLET_JOB_ID: 0 is below 1"):
        rank.identity({**base, "SUBLET_JOB_ID": "0"})
    with pytest.raises(SubletError, match="RANK 4 is not below WORLD_SIZE 4"):
        rank.identity({**base, "RANK": "4", "WORLD_SIZE": "4"})


def test_identity_reads_the_spec_settings(worker):
    me = rank.identity()
    assert (me.job_id, me.attempt, me.rank, me.world_size) == (7, 2, 1, 2)
    assert (me.checkpoint_every, me.checkpoint_keep) == (5, 2)


def test_a_progress_report_carries_the_step_and_no_checkpoint(worker):
    assert rank.report_progress(12, loss=2.5, tokens_per_s=900)
    peer, e = receive(worker)
    assert peer == b"rtok123"  # the worker addresses notices to "r" + token
    assert e.token == "tok123" and e.version == _wire.PROTOCOL_VERSION
    p = e.body.rankProgress
    assert (p.key.jobId, p.key.attempt, p.key.rank) == (7, 2, 1)
    assert (p.progress.step, p.progress.loss, p.progress.tokensPerS) == (12, 2.5, 900)
    assert p.progress.checkpointStep == -1  # merged: keeps what the worker knows


def test_a_step_without_a_loss_is_sent_as_nan_and_a_checkpoint_without_a_step(worker):
    rank.report_progress(3)
    _, e = receive(worker)
    assert math.isnan(e.body.rankProgress.progress.loss)
    rank.report_checkpoint(40, bytes=1 << 20, persist_s=1.5)
    _, e = receive(worker)
    p = e.body.rankProgress.progress
    assert (p.step, p.checkpointStep, p.checkpointBytes, p.checkpointPersistS) == \
        (-1, 40, 1 << 20, 1.5)
    with pytest.raises(ValueError):
        rank.report_checkpoint(-1)


def test_a_notice_message_is_received_with_its_deadline(worker):
    rank.report_progress(1)  # connects
    receive(worker)
    assert not rank.notice_received()
    notice(worker, deadline_ms=1_900_000_123_000)
    rank._rank._socket.poll(5000)
    assert rank.should_preempt()  # no process group: this rank's own view
    assert rank.preempt_deadline() == 1_900_000_123.0


def test_notices_for_another_rank_and_garbage_frames_are_ignored(worker):
    rank.report_progress(1)
    receive(worker)
    notice(worker, rank_=0)
    worker.send_multipart([b"rtok123", b"\x01" * 24])  # not an envelope
    notice(worker, attempt=1)
    e = _wire.envelope("")
    e.body.init("rankProgress")
    worker.send_multipart([b"rtok123", e.to_bytes()])  # a body a notice is not
    rank._rank._socket.poll(5000)
    assert not rank.notice_received()


def test_the_notice_signal_sets_the_flag_and_chains_the_programs_handler(worker, monkeypatch):
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        assert rank.install_signal_handlers()
        assert not rank.notice_received()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert rank.notice_received()
        assert seen == [signal.SIGUSR1]
        assert rank.should_preempt() and rank.preempt_deadline() is None
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_the_specs_signal_counts_as_a_notice(worker, monkeypatch):
    monkeypatch.setenv("SUBLET_PREEMPTION_SIGNAL", "SIGUSR2")
    try:
        rank.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert rank.notice_received()
    finally:
        for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
            signal.signal(s, signal.SIG_DFL)


def test_under_torchrun_only_local_rank_0_speaks_for_the_node(worker, monkeypatch):
    monkeypatch.setenv("SUBLET_LAUNCHER", "torchrun")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rank.report_progress(5) is False
    assert not worker.poll(100)
    monkeypatch.setenv("LOCAL_RANK", "0")
    fresh = rank._Rank()
    monkeypatch.setattr(rank, "_rank", fresh)
    assert rank.report_progress(5)
    _, e = receive(worker)
    assert e.body.rankProgress.key.rank == 1  # the agent's SUBLET_RANK


def test_wire_decode_refuses_garbage_and_other_versions():
    with pytest.raises(_wire.WireError, match="not a whole number of words"):
        _wire.decode(b"abc")
    with pytest.raises(_wire.WireError):
        _wire.decode(b"\xff" * 64)
    e = _wire.schema().Envelope.new_message(version=1)
    e.body.init("listNodesRequest")
    with pytest.raises(_wire.WireError, match="protocol version 1"):
        _wire.decode(e.to_bytes())


def test_torchrun_wrapper_turns_its_workers_exits_into_the_nodes_code():
    from types import SimpleNamespace as F

    from sublet.torchrun import _exit_code
    assert _exit_code({0: F(exitcode=75), 1: F(exitcode=75)}) == 75
    # torchrun SIGTERMs the rest once one has exited 75: still a preemption.
    assert _exit_code({0: F(exitcode=75), 1: F(exitcode=-15)}) == 75
    assert _exit_code({0: F(exitcode=-15)}) == 143
    assert _exit_code({0: F(exitcode=75), 1: F(exitcode=3)}) == 3
    assert _exit_code({0: F(exitcode=-9)}) == 137
