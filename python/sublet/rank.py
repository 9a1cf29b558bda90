"""Code running as a rank of a Sublet job: who am I, should I stop now, and
telling the worker how far I have come.

    from sublet import rank

    for step in range(start, steps):
        loss = train_step(step)
        rank.report_progress(step, loss=loss)
        if rank.should_preempt():          # agreed by every rank, at this step
            checkpointer.save(step, state)  # sublet.torch: commits, then reports
            rank.exit_preempted()           # exit 75: requeued, not a failure

Under Sublet the worker starts each rank with its identity and a private
control endpoint in the environment (SUBLET_CONTROL, SUBLET_CONTROL_TOKEN,
SUBLET_JOB_ID, SUBLET_ATTEMPT, SUBLET_RANK, ...). Outside Sublet (mpirun,
a laptop) every call here is a harmless no-op: should_preempt() is False and
reports go nowhere.

A preemption notice arrives as a signal (the spec's `preemption.signal`,
SIGUSR1 by default; SIGTERM means the same) and as a message on the control
endpoint carrying the deadline. Importing this module under Sublet installs
the signal handlers, so import it before the first long operation: a rank
that has not, dies of the default action of SIGUSR1 (code 138).

Reports are fire-and-forget: a rank never blocks or fails because its worker
is busy or gone. A report carries only what it names and the worker merges it
into what it knows (a checkpoint report keeps the last loss).
"""

import atexit
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

from . import _wire
from ._wire import EXIT_PREEMPTED
from .errors import SubletError

__all__ = [
    "EXIT_PREEMPTED", "Identity", "identity", "under_sublet", "should_preempt",
    "preempt_deadline", "notice_received", "report_progress", "report_checkpoint", "flush",
    "exit_preempted", "install_signal_handlers",
]


@dataclass(frozen=True)
class Identity:
    """Where this process stands in its job. `rank`, `world_size`,
    `local_rank` and `local_world_size` are the training process's (under
    `launcher: torchrun`, torchrun's RANK, WORLD_SIZE, ...); `job_id` and
    `attempt` are 0 outside Sublet."""

    job_id: int
    attempt: int
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    nnodes: int
    checkpoint_dir: Optional[str]
    checkpoint_every: int  # the spec's checkpoint.every_steps; 0: not set
    checkpoint_keep: int   # checkpoint.keep; 0: keep every checkpoint
    launcher: str          # "" (one process per GPU) or "torchrun"
    restart_count: int     # TORCHELASTIC_RESTART_COUNT: always 0 under Sublet


def _int(env, name, default=None, minimum=0):
    text = env.get(name)
    if text is None or text == "":
        if default is None:
            raise SubletError(f"{name} is not set")
        return default
    try:
        value = int(text)
    except ValueError:
        raise SubletError(f"{name}: '{text}' is not a number") from None
    if value < minimum:
        raise SubletError(f"{name}: {value} is below {minimum}")
    return value


def identity(env=None) -> Identity:
    """The identity from the environment (os.environ by default).
    SubletError naming the variable when SUBLET_CONTROL is set but the rank's
    identity is missing or malformed."""
    env = os.environ if env is None else env
    sublet = bool(env.get("SUBLET_CONTROL"))
    if sublet:
        for name in ("SUBLET_CONTROL_TOKEN", "SUBLET_JOB_ID", "SUBLET_ATTEMPT", "SUBLET_RANK"):
            if not env.get(name):
                raise SubletError(f"SUBLET_CONTROL is set but {name} is not")
        job_id = _int(env, "SUBLET_JOB_ID", minimum=1)
        attempt = _int(env, "SUBLET_ATTEMPT")
    else:
        job_id, attempt = 0, 0
    rank = _int(env, "RANK", _int(env, "SUBLET_RANK", 0))
    world = _int(env, "WORLD_SIZE", _int(env, "SUBLET_WORLD_SIZE", 1), minimum=1)
    if rank >= world:
        raise SubletError(f"RANK {rank} is not below WORLD_SIZE {world}")
    return Identity(
        job_id=job_id,
        attempt=attempt,
        rank=rank,
        world_size=world,
        local_rank=_int(env, "LOCAL_RANK", _int(env, "SUBLET_LOCAL_RANK", 0)),
        local_world_size=_int(env, "LOCAL_WORLD_SIZE", _int(env, "SUBLET_LOCAL_WORLD_SIZE", 1)),
        node_rank=_int(env, "GROUP_RANK", _int(env, "SUBLET_NODE_RANK", 0)),
        nnodes=_int(env, "SUBLET_NNODES", 1, minimum=1),
        checkpoint_dir=env.get("SUBLET_CHECKPOINT_DIR") or None,
        checkpoint_every=_int(env, "SUBLET_CHECKPOINT_EVERY", 0),
        checkpoint_keep=_int(env, "SUBLET_CHECKPOINT_KEEP", 0),
        launcher=env.get("SUBLET_LAUNCHER", ""),
        restart_count=_int(env, "TORCHELASTIC_RESTART_COUNT", 0),
    )


def under_sublet() -> bool:
    """True when a Sublet worker started this process."""
    return bool(os.environ.get("SUBLET_CONTROL"))


def _notice_signals():
    """The signals that mean "checkpoint and exit": the spec's (the worker
    passes it as SUBLET_PREEMPTION_SIGNAL), SIGUSR1 and SIGTERM."""
    out = [signal.SIGUSR1, signal.SIGTERM]
    named = os.environ.get("SUBLET_PREEMPTION_SIGNAL", "")
    if named:
        sig = getattr(signal, named, None)
        if isinstance(sig, signal.Signals) and sig not in out:
            out.append(sig)
    return out


class _Rank:
    """The process's one connection to its worker (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._signalled = None  # the signal number, set by the handler
        self._deadline_ms = None
        self._reason = ""
        self._agreed = False
        self._agreed_deadline_ms = None
        self._socket = None
        self._context = None
        self._closed = False
        self._key = None
        self._token = None
        self._warned = False
        self._previous = {}

    # ---- the control endpoint ------------------------------------------

    def _connect(self):
        """The DEALER socket, or None when there is no worker to talk to."""
        if self._socket is not None or self._closed:
            return self._socket
        env = os.environ
        if not env.get("SUBLET_CONTROL"):
            return None
        # Under torchrun every worker process inherits its agent's token; only
        # the local rank 0 of each node speaks for it (a routing id is one
        # connection). The others still get notices by signal.
        if env.get("SUBLET_LAUNCHER") == "torchrun" and env.get("LOCAL_RANK", "0") != "0":
            return None
        ident = identity()
        import zmq

        self._context = zmq.Context()
        s = self._context.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 2000)  # let the last report out at exit
        s.setsockopt(zmq.SNDHWM, 64)
        self._token = env["SUBLET_CONTROL_TOKEN"]
        # The worker addresses notices to "r" + token (worker/control_client.h).
        s.setsockopt(zmq.ROUTING_ID, ("r" + self._token).encode())
        s.connect(env["SUBLET_CONTROL"])
        self._socket = s
        self._key = (ident.job_id, ident.attempt, _int(env, "SUBLET_RANK"))
        return s

    def _send(self, fill):
        import zmq

        with self._lock:
            s = self._connect()
            if s is None:
                return False
            e = _wire.envelope(self._token)
            p = e.body.init("rankProgress")
            p.key.jobId, p.key.attempt, p.key.rank = self._key
            prog = p.progress
            prog.step = -1
            prog.checkpointStep = -1
            fill(prog)
            try:
                s.send(e.to_bytes(), flags=zmq.NOBLOCK)
                return True
            except zmq.ZMQError as err:
                if not self._warned:
                    self._warned = True
                    print(f"sublet: progress report dropped ({err}); later drops are silent",
                          file=sys.stderr)
                return False

    def _poll(self):
        import zmq

        with self._lock:
            s = self._connect()
            if s is None:
                return
            while True:
                try:
                    frame = s.recv(flags=zmq.NOBLOCK)
                except zmq.Again:
                    return
                except zmq.ZMQError:
                    return
                try:
                    reader, which = _wire.decode(frame)
                except _wire.WireError:
                    continue
                if which != "preemptNotice":
                    continue
                n = reader.body.preemptNotice
                if (n.key.jobId, n.key.attempt, n.key.rank) != self._key:
                    continue
                self._deadline_ms = n.deadlineUnixMs or None
                self._reason = n.reason
                if self._signalled is None:
                    self._signalled = n.signal or int(signal.SIGUSR1)

    def flush(self):
        with self._lock:
            if self._socket is not None:
                self._socket.close(linger=2000)
                self._socket = None
            if self._context is not None:
                self._context.term()
                self._context = None
            self._closed = True

    # ---- the notice -----------------------------------------------------

    def _handler(self, signum, frame):
        self._signalled = signum
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in _notice_signals():
            current = signal.getsignal(sig)
            if current == self._handler:
                continue
            if current not in (signal.SIG_DFL, signal.SIG_IGN, None):
                self._previous[sig] = current
            signal.signal(sig, self._handler)
        return True

    def notice_received(self):
        self._poll()
        return self._signalled is not None

    def should_preempt(self):
        if self._agreed:
            return True
        local = self.notice_received()
        deadline = self._deadline_ms
        torch = sys.modules.get("torch")
        dist = getattr(torch, "distributed", None) if torch is not None else None
        if dist is not None and dist.is_available() and dist.is_initialized():
            # One tiny all-reduce: any rank's notice, and the earliest deadline
            # any rank knows (-deadline under MAX).
            device = "cpu"
            backend = str(dist.get_backend())
            if backend == "nccl":
                device = torch.device("cuda", torch.cuda.current_device())
            t = torch.tensor([1 if local else 0, -(deadline if deadline else (1 << 62))],
                             dtype=torch.int64, device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            agreed = int(t[0].item()) > 0
            d = -int(t[1].item())
            deadline = d if d < (1 << 62) else None
        else:
            agreed = local
        if agreed:
            self._agreed = True
            self._agreed_deadline_ms = deadline
        return agreed

    def deadline(self):
        d = self._agreed_deadline_ms if self._agreed else self._deadline_ms
        return None if d is None else d / 1000.0


_rank = _Rank()


def install_signal_handlers() -> bool:
    """Installs the notice handlers (done at import under Sublet, from the
    main thread). A handler the program had is still called after ours."""
    return _rank.install()


def notice_received() -> bool:
    """This process's own view: a notice signal or message has arrived.
    Not agreed with the other ranks; use should_preempt() to act on it."""
    return _rank.notice_received()


def should_preempt() -> bool:
    """True once a preemption notice has reached any rank of the job, agreed
    by every rank at this call: call it from every rank at the same point
    (the step boundary). With a torch.distributed process group it is one
    all-reduce of two integers; without one it is this process's view. Once
    True it stays True without further collectives (every rank agreed)."""
    return _rank.should_preempt()


def preempt_deadline() -> Optional[float]:
    """The notice's deadline (Unix seconds): after it the worker kills what
    still runs. None before a notice, or when only the signal has arrived on
    every rank."""
    return _rank.deadline()


def report_progress(step: int, loss: Optional[float] = None,
                    tokens_per_s: Optional[float] = None) -> bool:
    """Tells the worker that this rank finished `step` (with its loss and
    throughput when given). It feeds `sublet show`, progress_timeout, and how
    much work a preemption loses. False when there is no worker or the report
    was dropped."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")

    def fill(p):
        p.step = int(step)
        p.loss = math.nan if loss is None else float(loss)
        p.tokensPerS = 0.0 if tokens_per_s is None else float(tokens_per_s)

    return _rank._send(fill)


def report_checkpoint(step: int, bytes: int = 0, persist_s: float = 0.0) -> bool:
    """Tells the worker that the checkpoint of `step` is committed (call it
    only after the commit: the job resumes from it). `bytes` and
    `persist_s` (how long writing it took) let the coordinator warn an admin
    whose reclaim deadline is too short. Rank 0's report is the job's."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")

    def fill(p):
        p.checkpointStep = int(step)
        p.checkpointBytes = max(0, int(bytes))
        p.checkpointPersistS = max(0.0, float(persist_s))

    return _rank._send(fill)


def flush() -> None:
    """Delivers queued reports (waits at most 2 s) and closes the endpoint."""
    _rank.flush()


def exit_preempted() -> None:
    """Flushes the reports and exits 75: "checkpointed for preemption"."""
    flush()
    sys.exit(EXIT_PREEMPTED)


if under_sublet():
    install_signal_handlers()
    atexit.register(flush)
