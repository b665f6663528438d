"""The demo talks only to servers it started: a port taken by another process fails it at once, with a message
naming the port and the options, and the foreign listener never receives a byte. Real processes and sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from alumni_orchestration.harness.ports import PortError, ensure_free, wait_until_own_port

OPTIONS = {"sandbox": "--sandbox-port", "webhook": "--webhook-port", "ui": "--ui-port"}


class ForeignListener:
    """Another program's server on a port: it accepts connections and records each one and every byte."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.sock.listen()
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.connections.append(conn.recv(65536))
                except OSError:
                    self.connections.append(b"")

    def __enter__(self) -> ForeignListener:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("taken", ["sandbox", "webhook", "ui"])
@pytest.mark.parametrize("foreign_host", ["127.0.0.1", "0.0.0.0"])
def test_a_demo_whose_port_is_taken_exits_at_once_naming_it_and_never_reads_from_it(
        tmp_path: Path, taken: str, foreign_host: str) -> None:
    with ForeignListener(foreign_host) as foreign:
        ports = {service: _free_port() for service in OPTIONS}
        ports[taken] = foreign.port
        args = [arg for service, option in OPTIONS.items() for arg in (option, str(ports[service]))]
        result = subprocess.run([sys.executable, "-m", "alumni_orchestration.cli", "demo", "--members", "60",
                                 "--years", "1", *args],
                                env={**os.environ, "ALUMNI_HOME": str(tmp_path / "home")},
                                capture_output=True, text=True, timeout=120)
        connections = list(foreign.connections)
    assert result.returncode != 0
    assert f"Port {foreign.port}" in result.stderr and OPTIONS[taken] in result.stderr, result.stderr
    assert all(option in result.stderr for option in OPTIONS.values())
    assert connections == []  # not a request, not even a connection
    assert not (tmp_path / "home" / "demo").exists()  # it failed before generating anything


def test_two_services_on_one_port_are_refused() -> None:
    port = _free_port()
    with pytest.raises(PortError, match=f"Port {port} is given to both"):
        ensure_free({"sandbox": port, "webhook receiver": port})


def test_the_port_of_a_started_service_is_accepted_once_its_own_child_listens(tmp_path: Path) -> None:
    port = _free_port()
    child = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                              "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_own_port(port, child, "sandbox", timeout=30)
        assert child.poll() is None
    finally:
        child.terminate()
        child.wait(timeout=60)  # generous: a loaded CI machine once took over 10 s to reap it


def test_a_listener_that_is_not_the_child_is_refused_without_a_connection() -> None:
    """The port was free when checked, then another program took it before the child could: refused."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with ForeignListener() as foreign:
            with pytest.raises(PortError, match=f"Port {foreign.port} .*--webhook-port"):
                wait_until_own_port(foreign.port, child, "webhook receiver", timeout=10)
            assert foreign.connections == []
    finally:
        child.kill()
        child.wait(timeout=10)


def test_a_child_that_died_on_a_taken_port_is_reported_with_its_port(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    with ForeignListener() as foreign:
        with log.open("wb") as out:
            child = subprocess.Popen([sys.executable, "-m", "http.server", str(foreign.port), "--bind", "127.0.0.1"],
                                     stdout=out, stderr=subprocess.STDOUT)
            child.wait(timeout=30)  # it cannot bind: "Address already in use"
        with pytest.raises(PortError, match=f"Port {foreign.port} .*--sandbox-port"):
            wait_until_own_port(foreign.port, child, "sandbox", log, timeout=10)
        assert foreign.connections == []
