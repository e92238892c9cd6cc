"""numpy's BLAS threads in the processes that serve many requests at once.

OpenBLAS splits one product over every core and its threads spin while they wait for work. In
a process that already runs several requests (the API) or batches (the refresh worker) side by
side, beside other such processes on the same cores, those spinning threads took the cores
from the work itself: with 8 clients asking for recommendations, the refresh lag's p95 was
17-20 s with numpy's default 2 threads and 0.4 s with 1 (benchmarks/api_load.py
--freshness-only --load-clients 8, same session). The price: serving alone, two servers side
by side with alternating rounds (benchmarks/api_ab.py), answered 0.91-0.98x as many requests
with one thread. Set 0 where no refresh worker shares the API's cores. Training keeps its
threads (torch's own pool, not this one)."""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: threads for numpy's BLAS in serving processes: `serve` and `worker` set 1 unless it is set
#: already; 0 (or unset, in any other process) leaves the library's default
SETTING = "BEACON_BLAS_THREADS"


def limit_for_serving() -> int | None:
    """Limit numpy's BLAS in this process to BEACON_BLAS_THREADS threads; the limit in force,
    or None when left alone."""
    raw = os.environ.get(SETTING, "").strip() or "0"
    try:
        threads = int(raw)
    except ValueError:
        log.warning("%s=%r is not a number of threads; using 1", SETTING, raw)
        threads = 1
    if threads <= 0:
        return None
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    return threads
