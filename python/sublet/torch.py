"""Checkpoints of a PyTorch job with torch.distributed.checkpoint (DCP), in
the job's checkpoint directory, as Sublet expects them:

    <SUBLET_CHECKPOINT_DIR>/step-00000400/
        .metadata, __0_0.distcp, ...   # what DCP writes, from every rank
        COMMIT                         # written last, by rank 0

A save writes into `.step-00000400.tmp-<attempt>`, waits for every rank,
then rank 0 writes COMMIT, fsyncs, renames the directory into place and
fsyncs its parent: a reader sees a whole checkpoint or none. Only then is the
step reported to the worker (sublet.rank.report_checkpoint), so the job never
resumes from a step that is not on disk. A load picks the newest step with a
COMMIT and reshards through DCP, so a job may resume at another world size
(what DCP can reshard: replicated DDP state always, DTensor/FSDP state by
its placements).

    ckpt = Checkpointer()                  # directory, every_steps, keep from the spec
    state = {"app": ModelState(model, optimizer)}
    start = ckpt.load(state)               # None: nothing committed yet
    for step in range((start or 0) + 1, steps + 1):
        ...
        ckpt.maybe_save(step, state)       # every `checkpoint.every_steps`
        if rank.should_preempt():
            ckpt.save(step, state)
            rank.exit_preempted()
"""

import json
import os
import re
import shutil
import time
from typing import Optional

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.stateful import Stateful

from . import rank as _rank
from .errors import SubletError

__all__ = ["Checkpointer", "ModelState", "step_dir_name"]

_STEP = re.compile(r"^step-(\d{8,})$")


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


class ModelState(Stateful):
    """A model (plain, DDP or FSDP) and its optimizer as one DCP Stateful,
    through torch.distributed.checkpoint.state_dict (which strips DDP's
    `module.` prefixes, so a checkpoint loads with or without DDP), plus
    `extra`, a dict of JSON values."""

    def __init__(self, model, optimizer=None, extra=None):
        self.model = model
        self.optimizer = optimizer
        # Small JSON values saved with the model: data cursor, step, seeds ...
        self.extra = dict(extra or {})

    def state_dict(self):
        if self.optimizer is None:
            model_sd, optim_sd = get_state_dict(self.model, [])
        else:
            model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        # One string, not a dict: DCP loads only the keys the target already
        # has, and a fresh ModelState does not know the saved extra keys.
        return {"model": model_sd, "optim": optim_sd, "extra_json": json.dumps(self.extra)}

    def load_state_dict(self, state_dict):
        set_state_dict(self.model, self.optimizer if self.optimizer is not None else [],
                       model_state_dict=state_dict["model"],
                       optim_state_dict=state_dict["optim"])
        self.extra = json.loads(state_dict.get("extra_json") or "{}")


def _world():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


class Checkpointer:
    """Saves and loads DCP checkpoints in `directory` (default
    SUBLET_CHECKPOINT_DIR), every `every_steps` (default the spec's
    checkpoint.every_steps), keeping the newest `keep` (default the spec's
    checkpoint.keep; 0 keeps all). save() and load() are collective: every
    rank calls them with the same step."""

    def __init__(self, directory: Optional[str] = None, every_steps: Optional[int] = None,
                 keep: Optional[int] = None):
        ident = _rank.identity()
        self.directory = directory or ident.checkpoint_dir
        if not self.directory:
            raise SubletError("no checkpoint directory: pass one, or run under Sublet "
                              "(SUBLET_CHECKPOINT_DIR)")
        self.every_steps = ident.checkpoint_every if every_steps is None else int(every_steps)
        self.keep = ident.checkpoint_keep if keep is None else int(keep)
        if self.every_steps < 0 or self.keep < 0:
            raise SubletError("every_steps and keep must be >= 0")
        self._attempt = ident.attempt
        self.last_save = None  # {"step", "bytes", "persist_s"} of the newest save

    # ---- what is on disk --------------------------------------------------

    def committed_steps(self):
        """Committed steps, oldest first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        steps = []
        for name in names:
            m = _STEP.match(name)
            if m and os.path.isfile(os.path.join(self.directory, name, "COMMIT")):
                steps.append(int(m.group(1)))
        return sorted(steps)

    def latest(self) -> Optional[int]:
        steps = self.committed_steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> str:
        return os.path.join(self.directory, step_dir_name(step))

    # ---- saving -------------------------------------------------------------

    def due(self, step: int) -> bool:
        return self.every_steps > 0 and step > 0 and step % self.every_steps == 0

    def maybe_save(self, step: int, state) -> bool:
        """save() when `step` is a multiple of every_steps; True if it saved."""
        if not self.due(step):
            return False
        self.save(step, state)
        return True

    def save(self, step: int, state) -> str:
        """Writes `state` (a dict of tensors and Statefuls) as the checkpoint
        of `step`, commits it, reports it, prunes beyond `keep`; returns its
        directory. Every rank returns after the commit."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        me, world = _world()
        final = self.path(step)
        tmp = os.path.join(self.directory, f".{step_dir_name(step)}.tmp-{self._attempt}")
        start = time.monotonic()
        if me == 0:
            os.makedirs(self.directory, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
        _barrier()
        dcp.save(state, checkpoint_id=tmp)  # every rank's shards, then rank 0's metadata
        _barrier()
        if me == 0:
            commit = os.path.join(tmp, "COMMIT")
            with open(commit, "w") as f:
                json.dump({"step": step, "world_size": world, "format": "torch-dcp",
                           "time_unix_s": time.time()}, f)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(tmp)
            if os.path.exists(final):  # the same step saved again (a resumed job)
                old = final + f".old-{self._attempt}"
                shutil.rmtree(old, ignore_errors=True)
                os.rename(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.rename(tmp, final)
            _fsync_dir(self.directory)
        _barrier()  # committed on every rank's return
        persist_s = time.monotonic() - start
        size = _size(final) if me == 0 else 0
        self.last_save = {"step": step, "bytes": size, "persist_s": persist_s}
        _rank.report_checkpoint(step, size, persist_s)
        if me == 0:
            self._prune()
        return final

    def _prune(self):
        steps = self.committed_steps()
        if self.keep > 0:
            for s in steps[:-self.keep]:
                shutil.rmtree(self.path(s), ignore_errors=True)
        for name in os.listdir(self.directory):
            # Partial saves (a rank killed mid-save): never committed, never
            # read. Saves are collective, so none is in progress now.
            if name.startswith(".step-") and ".tmp-" in name:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    # ---- loading ------------------------------------------------------------

    def load(self, state, step: Optional[int] = None) -> Optional[int]:
        """Loads the newest committed checkpoint (or `step`) into `state` in
        place and returns its step; None when there is none. DCP reshards to
        this world size. Every rank must see the same directory."""
        committed = self.committed_steps()
        if step is not None and step not in committed:
            raise SubletError(f"{self.path(step)}: no committed checkpoint of step {step}")
        chosen = step if step is not None else (committed[-1] if committed else None)
        # Rank 0 decides, so that every rank loads the same step even if a
        # save lands while they list the directory.
        if dist.is_available() and dist.is_initialized():
            box = [chosen]
            dist.broadcast_object_list(box, src=0)
            chosen = box[0]
        if chosen is None:
            return None
        dcp.load(state, checkpoint_id=self.path(chosen))
        return chosen
