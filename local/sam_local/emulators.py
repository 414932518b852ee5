"""Inside the emulator container of ``make sam-local``: moto and the Binance simulator, in one process.

They bind every interface of the container, which lives only on the docker network that
``local.sam_local`` creates (and on the host's 127.0.0.1 through published ports), so functions
running in Lambda containers on that network reach them by this container's name. Tables, queues
and schedules are created from the host through the published moto port (``provision``), exactly
as ``make run`` creates them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from moto.server import ThreadedMotoServer

from local.aws_emulation import serialize_dynamodb
from local.binance_sim.config import SimulatorConfig
from local.binance_sim.server import SimulatorHTTPServer
from local.binance_sim.state import SimulatorState

__all__ = ["main"]

ANY_INTERFACE = "0.0.0.0"  # the container's own interfaces only: its network is the test's own


def main(argv: list[str] | None = None) -> None:
    """Serve moto and the simulator until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m local.sam_local.emulators")
    parser.add_argument("--moto-port", type=int, default=5000)
    parser.add_argument("--sim-port", type=int, default=8900)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    serialize_dynamodb()
    moto = ThreadedMotoServer(ip_address=ANY_INTERFACE, port=args.moto_port, verbose=False)
    moto.start()
    simulator = SimulatorHTTPServer(SimulatorState(SimulatorConfig()), args.sim_port, host=ANY_INTERFACE)
    threading.Thread(target=simulator.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print(f"emulators up: moto :{args.moto_port}, Binance simulator :{args.sim_port}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    simulator.shutdown()
    moto.stop()


if __name__ == "__main__":
    main()
