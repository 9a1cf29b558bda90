"""Sublet's Python SDK.

- `sublet.rank`: for code running as a rank (identity, should_preempt,
  report_progress, report_checkpoint).
- `sublet.torch`: torch.distributed.checkpoint saves into the job's
  checkpoint directory, committed atomically, and resume from the newest.
- `sublet.Client`: the tenant/admin API of the coordinator, as the CLI uses it.
- `python -m sublet.torchrun`: what the worker runs for `launcher: torchrun`.
"""

from .client import Client
from .errors import SubletError

__all__ = ["Client", "SubletError"]
__version__ = "0.16.0"
