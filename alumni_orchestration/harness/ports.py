"""The demo's ports: it talks only to servers it started itself.

Before anything else (in particular before generating an association), every port the demo needs must be
free: a bind on 127.0.0.1 succeeds. Once a service is started, its port must be listened on by that
child process or one of its descendants (`dagster dev` serves the UI from a grandchild); the owner of a
listening socket is read from Linux's /proc (socket inode -> process), so the demo never sends a byte
to a listener before knowing it is its own. Where /proc is missing, the check before the start and the
child still running are what is left.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"  # the TCP state column of /proc/net/tcp
PORT_OPTIONS = {"sandbox": "--sandbox-port", "webhook receiver": "--webhook-port", "Dagster UI": "--ui-port"}


class PortError(RuntimeError):
    """A port the demo cannot use as its own: the message names it and the options to choose others."""


def _advice() -> str:
    return ("Stop that process, or give the demo other ports: alumni demo --sandbox-port N --webhook-port N "
            '--ui-port N (make demo ARGS="--sandbox-port 18765 --webhook-port 18766 --ui-port 13000").')


def port_taken(service: str, port: int) -> PortError:
    option = PORT_OPTIONS.get(service, "")
    return PortError(f"Port {port} (the {service}{', ' + option if option else ''}) is already in use by another "
                     f"process: the demo only talks to servers it started itself. {_advice()}")


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """A bind succeeds, with SO_REUSEADDR as http.server sets it: a listener anywhere on the port fails it,
    a closed connection lingering in TIME_WAIT does not."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the system has just given out as free (bound to port 0, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_free(ports: Mapping[str, int]) -> None:
    """Raise PortError for the first port (service -> port) that is taken or given to two services."""
    seen: dict[int, str] = {}
    for service, port in ports.items():
        if port in seen:
            raise PortError(f"Port {port} is given to both the {seen[port]} and the {service}. {_advice()}")
        seen[port] = service
        if not is_free(port):
            raise port_taken(service, port)


def listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on `port` (IPv4 and IPv6, any address); None where /proc cannot tell."""
    tables = [PROC / "net" / "tcp", PROC / "net" / "tcp6"]
    if not tables[0].exists():
        return None
    inodes = set()
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def process_tree(pid: int) -> set[int]:
    """pid and all its descendants (from each process's parent id in /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the command name may hold spaces and parentheses: the fields after its last ')' are fixed
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if current not in tree:
            tree.add(current)
            todo.extend(children.get(current, []))
    return tree


def socket_inodes(pids: Iterable[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in (PROC / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return inodes


def _log_tail(log: Path | None, lines: int = 5) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return f" Last lines of {log}:\n  " + "\n  ".join(tail) if tail else ""


def wait_until_own_port(port: int, process: subprocess.Popen, service: str, log: Path | None = None,
                        timeout: float = 30.0) -> None:
    """Return once `process` (or a descendant) listens on `port`; raise PortError as soon as another process
    does, or if the service exits first. Never connects to the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            taken = listening_inodes(port)
            if taken:
                raise port_taken(service, port)
            raise PortError(f"The {service} exited (code {process.returncode}) before listening on port {port}."
                            f"{_log_tail(log)}")
        listening = listening_inodes(port)
        if listening is None:  # no /proc: the best left is a listener while our child runs
            if not is_free(port):
                return
        elif listening:
            if listening <= socket_inodes(process_tree(process.pid)):
                return
            raise port_taken(service, port)
        time.sleep(0.1)
    raise PortError(f"The {service} did not listen on port {port} within {timeout:.0f} s.{_log_tail(log)}")
