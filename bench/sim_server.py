"""A provider simulator in its own process, for the latency benchmark: prints its URL, serves until killed.

Usage: ``python bench/sim_server.py TYPE LATENCY_SECONDS``. Every submission waits LATENCY_SECONDS
(the simulator's ``latency`` fault, injected for every call) before it is answered.
"""

from __future__ import annotations

import signal
import sys
import threading

from faxops.testing import SIMULATORS


def main() -> None:
    kind, latency = sys.argv[1], float(sys.argv[2])
    sim = SIMULATORS[kind]().start()
    sim.inject("latency", path=r"/v3/accounts/[^/]+/outbox", method="POST", delay=latency, times=10**9)
    print(sim.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: done.set())
    done.wait()
    sim.stop()


if __name__ == "__main__":
    main()
