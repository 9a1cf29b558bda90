"""`python -m sublet.torchrun [torchrun options] SCRIPT [ARGS]`: torchrun
(torch.distributed.run) as a Sublet rank. The worker starts it once per node
for `launcher: torchrun` (coordinator/rank_env.h RankCommand); by hand it is
plain torchrun.

What it adds to torchrun, under Sublet:
- The preemption notice (the spec's signal, SIGUSR1 by default) is forwarded
  to every worker process at once and torchrun keeps running: the workers
  agree (sublet.rank.should_preempt), checkpoint and exit 75 by themselves.
  torchrun alone either dies of SIGUSR1 (code 138) or, for a signal it
  handles, shuts its workers down with a 30-second SIGKILL.
- The node's exit code is its workers': 75 when every failed worker exited
  75 (checkpointed for preemption), else the first failure's code (128+N
  for a signal N), 0 when all succeeded. torchrun alone exits 1 for any of
  these, so a preemption would count as a crash.
- TORCHELASTIC_RESTART_COUNT counts Sublet's restarts of the gang
  (SUBLET_ATTEMPT - 1, after a failure or a preemption): torchrun runs with
  --max-restarts=0, so its own count would always be 0.
- Nothing it started outlives it: leftover workers are killed at exit (the
  worker's sandbox ends the rest at the attempt's end).
"""

import os
import signal
import sys

EXIT_PREEMPTED = 75


def _children():
    pids = []
    try:
        for tid in os.listdir(f"/proc/{os.getpid()}/task"):
            with open(f"/proc/{os.getpid()}/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def _forward(signum, frame):
    for pid in _children():
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _exit_code(failures):
    """The node's code from torchrun's ProcessFailures."""
    codes = []
    for f in failures.values():
        code = f.exitcode
        codes.append(128 - code if code < 0 else code)  # -N: killed by signal N
    # Once one worker has exited, torchrun SIGTERMs the others. After a
    # preemption they have all passed the checkpoint's commit (a save ends
    # in a barrier), so one that SIGTERM caught on its way out (Python
    # restores the default handler while it finalizes) was exiting 75 too.
    caught = 128 + int(signal.SIGTERM)
    if EXIT_PREEMPTED in codes and all(c in (EXIT_PREEMPTED, caught) for c in codes):
        return EXIT_PREEMPTED
    for c in codes:
        if c not in (0, EXIT_PREEMPTED):
            return c
    return codes[0] if codes else 1


def restart_count():
    """Sublet's restarts of this gang so far (0 outside Sublet)."""
    try:
        return max(int(os.environ.get("SUBLET_ATTEMPT", "1")) - 1, 0)
    except ValueError:
        return 0


def _count_sublets_restarts(agent_module, restarts):
    """Adds `restarts` to the TORCHELASTIC_RESTART_COUNT torchrun's agent
    gives each worker (it builds the environments, then starts them)."""
    start = agent_module.start_processes

    def start_processes(*args, **kwargs):
        for env in kwargs.get("envs", {}).values():
            own = int(env.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
            env["TORCHELASTIC_RESTART_COUNT"] = str(own + restarts)
        return start(*args, **kwargs)

    agent_module.start_processes = start_processes


def notice_signal():
    name = os.environ.get("SUBLET_PREEMPTION_SIGNAL", "SIGUSR1") or "SIGUSR1"
    sig = getattr(signal, name, None)
    return sig if isinstance(sig, signal.Signals) else signal.SIGUSR1


def main(argv=None):
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.agent.server import local_elastic_agent
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    argv = list(sys.argv[1:] if argv is None else argv)
    notice = notice_signal()
    if os.environ.get("SUBLET_CONTROL"):
        signal.signal(notice, _forward)
        # torchrun must leave the notice to us: drop it from the signals it
        # turns into a shutdown.
        handled = [s for s in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT") if s != notice.name]
        argv = [f"--signals-to-handle={','.join(handled)}"] + argv
        _count_sublets_restarts(local_elastic_agent, restart_count())
    args = torchrun.parse_args(argv)
    code = 0
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        code = _exit_code(e.failures)
    finally:
        for pid in _children():
            try:
                os.killpg(pid, signal.SIGKILL)  # its workers lead their own sessions
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    sys.exit(code)


if __name__ == "__main__":
    main()
