"""Real servers for the tests, on loopback only: a moto S3 server, a Dask scheduler's tasks."""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager


@contextmanager
def moto_endpoint():
    """An S3-compatible moto server on 127.0.0.1 (a free port); yields its URL."""
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def scheduler_tasks(client, timeout=5.0) -> int:
    """Tasks the scheduler still holds, once released futures had time to go.

    Garbage is collected first: a future in a reference cycle is released
    only when the cycle is collected, which depends on what ran before.
    """
    gc.collect()
    deadline = time.monotonic() + timeout
    while True:
        n = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
        if n == 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.02)
