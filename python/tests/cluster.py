"""A real cluster for the SDK's tests: sublet-coordinator and sublet-worker
processes on loopback in a fresh directory (as tests/e2e/test_cluster.cc
makes them), driven through sublet.Client and the `sublet` CLI. Waiting polls
observable state with a deadline; nothing sleeps a fixed time to
synchronise."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import sublet

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SUBLET_BIN_DIR", os.path.join(REPO, "build", "bin"))
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")


def binaries_built():
    return all(os.access(os.path.join(BIN, b), os.X_OK)
               for b in ("sublet-coordinator", "sublet-worker", "sublet"))


class Cluster:
    def __init__(self, workers=2, gpus=2, stop_grace="2s", extra_config=""):
        self.dir = tempfile.mkdtemp(prefix="sublet-py-")
        os.chmod(self.dir, 0o755)
        self.shared = os.path.join(self.dir, "shared")
        os.makedirs(self.shared)
        os.chmod(self.shared, 0o1777)
        # Port 0: the coordinator binds a free port and reports it
        # (start_coordinator); a restart reuses it.
        self.endpoint = "tcp://127.0.0.1:0"
        self.gpus = gpus
        self._procs = {}
        state = os.path.join(self.dir, "coordinator")
        os.makedirs(state, mode=0o700)
        self.coordinator_key = self._run_out([os.path.join(BIN, "sublet-coordinator"),
                                              "--state-dir", state, "--show-public-key"])
        keys = []
        for i in range(workers):
            work = os.path.join(self.dir, f"node-{i}")
            os.makedirs(work)
            keys.append(self._run_out(self._worker_argv(i) + ["--show-public-key"]))
        with open(os.path.join(self.dir, "coordinator.yaml"), "w") as f:
            f.write(
                f"storage_root: {self.dir}/storage\n"
                "heartbeat_timeout: 10s\n"
                f"stop_grace: {stop_grace}\n"
                "restart_backoff: {base: 0s}\n"
                "tenants:\n"
                "  - {name: acme, token: acme-token}\n"
                "  - {name: globex, token: globex-token}\n"
                "admins:\n"
                "  - {name: infra, token: admin-token}\n"
                "workers:\n"
                "  token: node-token\n"
                "  keys:\n" + "".join(f"    - '{k}'\n" for k in keys) + extra_config)
        token = os.path.join(self.dir, "node-token")
        with open(token, "w") as f:
            f.write("node-token\n")
        os.chmod(token, 0o600)
        self.start_coordinator()
        for i in range(workers):
            self.start_worker(i)
        self.wait_for_ready_nodes(workers)

    def _run_out(self, argv):
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    def _worker_argv(self, i):
        return [os.path.join(BIN, "sublet-worker"), "--coordinator", self.endpoint,
                "--name", f"node-{i}", "--gpus", str(self.gpus),
                "--work-dir", os.path.join(self.dir, f"node-{i}"),
                "--token-file", os.path.join(self.dir, "node-token"), "--heartbeat", "200ms",
                "--address", "127.0.0.1", "--share", self.shared,
                # The checkout (the venv, the scripts ranks run) and the build
                # are hidden by a sandbox's private /tmp when they live there.
                "--share", REPO] + ([] if BIN.startswith(REPO + os.sep)
                                    else ["--share", os.path.dirname(BIN)])

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        self._procs[name] = subprocess.Popen(argv, stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL)

    def start_coordinator(self):
        first = self.endpoint.endswith(":0")
        ready = os.path.join(self.dir, "coordinator.endpoint")
        argv = [os.path.join(BIN, "sublet-coordinator"), "--listen", self.endpoint,
                "--state-dir", os.path.join(self.dir, "coordinator"), "--config",
                os.path.join(self.dir, "coordinator.yaml")]
        self._spawn("coordinator", argv + (["--ready-file", ready] if first else []))
        if not first:
            return
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):  # written (renamed into place) once it listens
            if self._procs["coordinator"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the coordinator did not start: " +
                                   open(os.path.join(self.dir, "coordinator.log")).read())
            time.sleep(0.05)
        with open(ready) as f:
            self.endpoint = f.read().strip()

    def start_worker(self, i):
        self._spawn(f"worker-{i}", self._worker_argv(i) +
                    ["--coordinator-key", self.coordinator_key])

    def kill_worker(self, i, sig=signal.SIGTERM):
        p = self._procs.pop(f"worker-{i}", None)
        if p:
            p.send_signal(sig)
            p.wait()

    def client(self, token="acme-token", timeout=10.0):
        return sublet.Client(self.endpoint, token=token, coordinator_key=self.coordinator_key,
                             timeout=timeout, env={})

    def cli(self, *args, token="acme-token"):
        env = dict(os.environ, SUBLET_COORDINATOR=self.endpoint,
                   SUBLET_COORDINATOR_KEY=self.coordinator_key, SUBLET_TOKEN=token,
                   XDG_CONFIG_HOME=os.path.join(self.dir, "xdg"), HOME=self.dir)
        return subprocess.run([os.path.join(BIN, "sublet"), *args], env=env,
                              capture_output=True, text=True)

    def wait_for_ready_nodes(self, count, timeout=30):
        with self.client(token="admin-token") as c:
            self.poll(lambda: sum(n["state"] == "ready" for n in c.nodes()) >= count,
                      timeout, f"{count} ready nodes")

    @staticmethod
    def poll(condition, timeout, what):
        end = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def close(self, keep=False):
        for name in [n for n in self._procs if n.startswith("worker")]:
            self._procs[name].send_signal(signal.SIGTERM)
        for name, p in list(self._procs.items()):
            if name.startswith("worker"):
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        c = self._procs.get("coordinator")
        if c:
            c.kill()
            c.wait()
        self._procs.clear()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
