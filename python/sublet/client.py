"""sublet.Client: the coordinator's tenant/admin API for automation, over
the same protocol as the `sublet` CLI (ZeroMQ with CURVE, pinning the
coordinator's public key; one Envelope per request, protocols/sublet.capnp).

    c = sublet.Client()                    # settings as the CLI finds them
    job = c.submit("job.yaml")             # or a dict, or YAML text
    c.wait(job, timeout=600)
    print(c.show(job)["state"], c.logs(job, rank=0))

Settings, each from: the argument, the environment (SUBLET_COORDINATOR,
SUBLET_COORDINATOR_KEY, SUBLET_TOKEN), the context file `sublet up` writes
(${XDG_CONFIG_HOME:-$HOME/.config}/sublet/context.yaml), the default
(tcp://127.0.0.1:7700). Replies come back as dicts with the schema's field
names in snake_case (job ids, states, events, progress, ...). Errors raise
SubletError with the coordinator's message and code.

Not thread-safe: one Client per thread (one ZeroMQ socket).
"""

import json
import os
import re
import time
from pathlib import Path

import yaml
import zmq
import zmq.utils.z85

from . import _wire
from .errors import SubletError

__all__ = ["Client", "DEFAULT_COORDINATOR"]

DEFAULT_COORDINATOR = "tcp://127.0.0.1:7700"

# absl::StatusCode numbers, as ErrorReply.code carries them.
_CODES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
          5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
          9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
          13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED"}

FINAL_STATES = ("succeeded", "failed", "cancelled")
_WHEN = ("succeeded", "failed", "any")


def context_file_path(env=None):
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or (
        os.path.join(env["HOME"], ".config") if env.get("HOME") else "")
    return os.path.join(base, "sublet", "context.yaml") if base else ""


def _read_context(path):
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SubletError(f"{path}: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise SubletError(f"{path}: not a YAML map of strings")
    return data


def _duration_ms(value):
    """5m, 90s, 1h30m, 250ms or a number of seconds -> milliseconds."""
    if isinstance(value, (int, float)):
        return int(value * 1000)
    text = str(value).strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise SubletError(f"deadline: '{value}' is not a duration like 90s, 5m or 1h")
    scale = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    return int(sum(float(n) * scale[u] for n, u in parts))


class Client:
    def __init__(self, coordinator=None, token=None, coordinator_key=None, timeout=5.0,
                 env=None):
        env = os.environ if env is None else env
        context = _read_context(context_file_path(env)) if not (
            (coordinator or env.get("SUBLET_COORDINATOR")) and
            (token or env.get("SUBLET_TOKEN")) and
            (coordinator_key or env.get("SUBLET_COORDINATOR_KEY"))) else {}
        self.coordinator = (coordinator or env.get("SUBLET_COORDINATOR") or
                            context.get("coordinator") or DEFAULT_COORDINATOR)
        self._token = token or env.get("SUBLET_TOKEN") or context.get("token") or ""
        self.coordinator_key = (coordinator_key or env.get("SUBLET_COORDINATOR_KEY") or
                                context.get("coordinator_key") or "")
        self.timeout = float(timeout)
        # The process's shared context: terminating a context whose sockets
        # the garbage collector has not closed yet would hang.
        self._context = zmq.Context.instance()
        self._socket = None
        self._next_id = 1

    def __repr__(self):  # never the token
        return f"sublet.Client(coordinator={self.coordinator!r})"

    def close(self):
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- transport ------------------------------------------------------

    def _connect(self):
        if self._socket is not None:
            return self._socket
        if not self.coordinator_key:
            raise SubletError(
                "no coordinator key: pass coordinator_key=, set SUBLET_COORDINATOR_KEY, or run "
                "`sublet up` (the key pins the coordinator; plain connections are refused)",
                "INVALID_ARGUMENT")
        try:
            server = self.coordinator_key.encode()
            if len(server) != 40:
                raise ValueError("not 40 characters of Z85")
            zmq.utils.z85.decode(server)
        except ValueError as e:
            raise SubletError(f"coordinator key: {e}", "INVALID_ARGUMENT") from None
        s = self._context.socket(zmq.DEALER)
        public, secret = zmq.curve_keypair()  # ephemeral, as the CLI's
        s.curve_serverkey = server
        s.curve_publickey = public
        s.curve_secretkey = secret
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)
        try:
            s.connect(self.coordinator)
        except zmq.ZMQError as e:
            s.close()
            raise SubletError(f"coordinator endpoint '{self.coordinator}': {e}",
                              "INVALID_ARGUMENT") from None
        self._socket = s
        return s

    def _call(self, fill, want):
        s = self._connect()
        request_id = self._next_id
        self._next_id += 1
        e = _wire.envelope(self._token, request_id)
        fill(e.body)
        frame = e.to_bytes()
        deadline = time.monotonic() + self.timeout
        sent = False
        while not sent:
            try:
                s.send(frame, flags=zmq.NOBLOCK)
                sent = True
            except zmq.Again:  # no connection yet (IMMEDIATE)
                if time.monotonic() >= deadline:
                    raise SubletError(f"cannot reach coordinator at {self.coordinator}",
                                      "UNAVAILABLE") from None
                time.sleep(0.01)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not s.poll(int(left * 1000) + 1, zmq.POLLIN):
                # A late reply would be read as this socket's next; start over.
                self._socket.close(linger=0)
                self._socket = None
                raise SubletError(f"cannot reach coordinator at {self.coordinator}",
                                  "UNAVAILABLE")
            parts = s.recv_multipart()
            if len(parts) != 1:
                continue
            try:
                reply, which = _wire.decode(parts[0])
            except _wire.WireError as err:
                raise SubletError(f"reply from the coordinator: {err}", "INVALID_ARGUMENT")
            if reply.requestId != request_id:
                continue  # a reply to an earlier, timed-out request
            if which == "errorReply":
                code = _CODES.get(reply.body.errorReply.code, "UNKNOWN")
                raise SubletError(reply.body.errorReply.message, code)
            if which != want:
                raise SubletError(f"unexpected reply from the coordinator ({which})", "INTERNAL")
            return getattr(reply.body, want)

    # ---- jobs -------------------------------------------------------------

    def submit(self, spec, array=None, depends_on=None):
        """Submits a job: `spec` is a path to a YAML file, YAML text, or a
        dict in the job spec's shape. `array` ("0-9%2") and `depends_on`
        (ids, or "12:succeeded" strings) are the CLI's --array and
        --depends-on. Returns the job id (an array's: its first task's).
        The coordinator validates the spec; a bad field raises SubletError
        (INVALID_ARGUMENT) naming it."""
        return self.submit_job(spec, array, depends_on)["job_id"]

    def submit_job(self, spec, array=None, depends_on=None):
        """As submit(), returning {"job_id", "array_size"}."""
        text = self._spec_text(spec, array, depends_on)

        def fill(body):
            body.init("submitJobRequest").specYaml = text

        r = self._call(fill, "submitJobReply")
        return {"job_id": r.jobId, "array_size": r.arraySize}

    @staticmethod
    def _spec_text(spec, array, depends_on):
        if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and
                                      os.path.isfile(spec)):
            with open(spec) as f:
                text = f.read()
            where = str(spec)
        elif isinstance(spec, str):
            text, where = spec, "spec"
        elif isinstance(spec, dict):
            text, where = None, "spec"
        else:
            raise SubletError(f"spec: a path, YAML text or a dict, not {type(spec).__name__}",
                              "INVALID_ARGUMENT")
        if array is None and not depends_on:
            return text if text is not None else json.dumps(spec)
        if text is not None:
            try:
                spec = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise SubletError(f"{where}: {e}", "INVALID_ARGUMENT") from None
            if not isinstance(spec, dict):
                raise SubletError(f"{where}: not a YAML map", "INVALID_ARGUMENT")
        spec = dict(spec)
        if array is not None:
            spec["array"] = str(array)
        if depends_on:
            deps = list(spec.get("depends_on") or [])
            for d in depends_on:
                job, _, when = str(d).partition(":")
                if not job.isdigit() or (when and when not in _WHEN):
                    raise SubletError(f"depends_on: '{d}' is not JOB or JOB:WHEN "
                                      "(WHEN: succeeded, failed, any)", "INVALID_ARGUMENT")
                deps.append({"job": int(job), "when": when or "succeeded"})
            spec["depends_on"] = deps
        return json.dumps(spec)

    def jobs(self, all=False):
        """The caller's jobs (admins: every tenant's), as dicts; without
        `all`, jobs that ended over an hour ago are left out."""
        def fill(body):
            body.init("listJobsRequest").all = bool(all)

        return [_wire.to_python(j) for j in self._call(fill, "jobListReply").jobs]

    def show(self, job_id):
        """One job: state, reason, ranks, events, progress, spec ..."""
        def fill(body):
            body.init("getJobRequest").jobId = int(job_id)

        return _wire.to_python(self._call(fill, "jobReply").job)

    def cancel(self, job_id):
        def fill(body):
            body.init("cancelJobRequest").jobId = int(job_id)

        return _wire.to_python(self._call(fill, "jobReply").job)

    def wait(self, job_id, states=FINAL_STATES, timeout=None, poll_s=0.3):
        """Polls until the job is in one of `states`; returns it. SubletError
        (DEADLINE_EXCEEDED) after `timeout` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.show(job_id)
            if job["state"] in states:
                return job
            if end is not None and time.monotonic() >= end:
                raise SubletError(f"job {job_id} is still {job['state']} after {timeout}s "
                                  f"({job.get('reason', '')})", "DEADLINE_EXCEEDED")
            time.sleep(poll_s)

    def logs(self, job_id, rank=0, attempt=0, offset=0, max_bytes=1 << 20):
        """All of one rank's output of `attempt` (0: the latest) from
        `offset` that is there now, as bytes."""
        out = bytearray()
        while True:
            def fill(body, offset=offset):
                r = body.init("readLogsRequest")
                r.jobId, r.rank, r.attempt = int(job_id), int(rank), int(attempt)
                r.offset, r.maxBytes = int(offset), int(max_bytes)

            reply = self._call(fill, "logsReply")
            out += reply.data
            if not reply.data or reply.complete or reply.nextOffset <= offset:
                return bytes(out)
            offset = reply.nextOffset

    def nodes(self):
        return [_wire.to_python(n) for n in
                self._call(lambda b: b.init("listNodesRequest"), "nodeListReply").nodes]

    def tenants(self):
        r = self._call(lambda b: b.init("listTenantsRequest"), "tenantListReply")
        return {"tenants": [_wire.to_python(t) for t in r.tenants], "policies": r.policies,
                "pool_gpus": r.poolGpus}

    # ---- admin --------------------------------------------------------------

    def reclaim(self, nodes=None, gpus=0, deadline="5m", reason=""):
        """Admin: takes `nodes` (names) or `gpus` back within `deadline`."""
        ms = _duration_ms(deadline)

        def fill(body):
            r = body.init("reclaimRequest")
            r.init("nodes", len(nodes or []))
            for i, n in enumerate(nodes or []):
                r.nodes[i] = n
            r.gpus, r.deadlineMs, r.reason = int(gpus), ms, reason

        reply = self._call(fill, "reclaimListReply")
        return _wire.to_python(reply.reclaims[0]) if len(reply.reclaims) else None

    def release(self, reclaim_id=0, nodes=None):
        """Admin: gives reclaimed nodes back, by reclaim id or by names."""
        def fill(body):
            r = body.init("releaseRequest")
            r.reclaimId = int(reclaim_id or 0)
            r.init("nodes", len(nodes or []))
            for i, n in enumerate(nodes or []):
                r.nodes[i] = n

        return [_wire.to_python(x) for x in self._call(fill, "reclaimListReply").reclaims]

    def reclaims(self, reclaim_id=0):
        def fill(body):
            body.init("listReclaimsRequest").reclaimId = int(reclaim_id or 0)

        return [_wire.to_python(x) for x in self._call(fill, "reclaimListReply").reclaims]
