"""One process of a small gloo group for test_torch.py:
`python dist_helper.py SCENARIO OUT_JSON [ARGS]` with RANK, WORLD_SIZE and
DIST_INIT_METHOD (a file:// store) in the environment. Writes what it saw to
OUT_JSON."""

import json
import os
import signal
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from sublet import rank
from sublet.torch import Checkpointer, ModelState


def model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo", init_method=os.environ["DIST_INIT_METHOD"],
                            rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
    me = dist.get_rank()
    result = {"rank": me}
    if scenario == "agree":
        # Only the last rank gets the notice (a signal, as from its worker),
        # between two calls; every rank must answer the same at each call.
        rank.install_signal_handlers()
        answers = [rank.should_preempt()]
        if me == dist.get_world_size() - 1:
            os.kill(os.getpid(), signal.SIGUSR1)
        dist.barrier()
        answers.append(rank.should_preempt())
        answers.append(rank.should_preempt())
        result["answers"] = answers
    elif scenario == "save":
        directory, step = sys.argv[3], int(sys.argv[4])
        m = DDP(model(seed=me + 1))  # DDP broadcasts rank 0's parameters
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        loss = m(torch.ones(4, 8)).sum()
        loss.backward()
        opt.step()
        state = {"app": ModelState(m, opt, extra={"cursor": step * 10})}
        Checkpointer(directory, every_steps=0, keep=0).save(step, state)
        result["params"] = [p.detach().flatten().tolist() for p in m.module.parameters()]
    elif scenario == "load":
        directory = sys.argv[3]
        m = DDP(model(seed=99))
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        app = ModelState(m, opt)
        result["step"] = Checkpointer(directory).load({"app": app})
        result["params"] = [p.detach().flatten().tolist() for p in m.module.parameters()]
        result["extra"] = app.extra
        result["momentum"] = [opt.state[p]["momentum_buffer"].flatten().tolist()
                              for p in m.module.parameters()]
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
