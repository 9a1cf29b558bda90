"""A data-parallel PyTorch job on Sublet: DDP over gloo (CPU) or NCCL (GPU),
checkpoints with torch.distributed.checkpoint through sublet.torch, progress
and preemption through sublet.rank.

Runs unchanged as `sublet submit examples/torch/ddp.yaml` (one process per
GPU, started by the worker), under `launcher: torchrun`
(examples/torch/torchrun.yaml), and by hand with `torchrun --nproc-per-node 2
train_ddp.py --checkpoint-dir /tmp/ck`.

The model is a small MLP fitted to a fixed random teacher. Step s trains on
a global batch drawn from seed s, split evenly across the ranks, so the loss
curve is the same at any world size that divides the batch: a job resumed on
fewer nodes continues the uninterrupted run's curve.
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from sublet import rank
from sublet.torch import Checkpointer, ModelState


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--global-batch", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--checkpoint-dir", default=None,
                   help="default: SUBLET_CHECKPOINT_DIR (the job's)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="default: the spec's checkpoint.every_steps")
    p.add_argument("--keep", type=int, default=None, help="default: the spec's checkpoint.keep")
    p.add_argument("--log-json", default=None,
                   help="rank 0 appends one JSON object per step and event to this file")
    p.add_argument("--min-step-s", type=float, default=0.0,
                   help="pace each step to at least this long (emulates a bigger model)")
    p.add_argument("--crash-at-step", type=int, default=-1,
                   help="rank --crash-rank exits 3 after this step, in the first attempt only")
    p.add_argument("--crash-rank", type=int, default=1)
    p.add_argument("--ignore-preemption", action="store_true",
                   help="never checkpoint for a notice (what a hung job does; tests the deadline)")
    return p.parse_args()


def batch(step, n, width, seed):
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    x = torch.randn(n, width, generator=g)
    teacher = torch.Generator().manual_seed(seed)
    w = torch.randn(width, 1, generator=teacher) / width ** 0.5
    y = torch.tanh(x @ w) + 0.05 * torch.randn(n, 1, generator=g)
    return x, y


def main():
    args = parse()
    me = rank.identity()
    distributed = me.world_size > 1
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", me.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                init_method="env://")
    if args.global_batch % me.world_size != 0:
        sys.exit(f"--global-batch {args.global_batch} is not divisible by the world size "
                 f"{me.world_size}")

    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(args.width, args.width), nn.Tanh(),
                          nn.Linear(args.width, 1)).to(device)
    ddp = DDP(model) if distributed else model
    optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9)
    app = ModelState(ddp, optimizer, extra={"step": 0})
    state = {"app": app}
    ckpt = Checkpointer(args.checkpoint_dir, args.checkpoint_every, args.keep)
    log = open(args.log_json, "a") if args.log_json and me.rank == 0 else None

    def emit(obj):
        if log:
            log.write(json.dumps(obj) + "\n")
            log.flush()

    start = ckpt.load(state)
    if start is not None:
        emit({"event": "resume", "step": start, "world_size": me.world_size,
              "attempt": me.attempt})
    first = (start or 0) + 1
    local = args.global_batch // me.world_size
    for step in range(first, args.steps + 1):
        began = time.monotonic()
        x, y = batch(step, args.global_batch, args.width, args.seed)
        x = x[me.rank * local:(me.rank + 1) * local].to(device)
        y = y[me.rank * local:(me.rank + 1) * local].to(device)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(ddp(x), y)
        loss.backward()
        optimizer.step()
        mean = loss.detach().clone()
        if distributed:
            dist.all_reduce(mean)
            mean /= me.world_size
        app.extra["step"] = step
        rank.report_progress(step, loss=float(mean))
        emit({"step": step, "loss": float(mean), "world_size": me.world_size})
        if step == args.crash_at_step and me.rank == args.crash_rank and me.attempt <= 1:
            print(f"rank {me.rank}: crashing after step {step} as asked", flush=True)
            os._exit(3)
        if step < args.steps and not args.ignore_preemption and rank.should_preempt():
            path = ckpt.save(step, state)
            emit({"event": "preempted", "step": step, "checkpoint": path,
                  "deadline": rank.preempt_deadline()})
            rank.exit_preempted()
        if ckpt.maybe_save(step, state):
            emit({"event": "checkpoint", **ckpt.last_save})
        spare = args.min_step_s - (time.monotonic() - began)
        if spare > 0:
            time.sleep(spare)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
