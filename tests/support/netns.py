"""Hosts for tests: Linux network namespaces on one bridge, one namespace per host.

::

    root namespace                       host i (namespace jk<pid><run>h<i>)
    bridge jk<pid><run>br 10.213.k.1/24 ── veth jk<pid><run>v<i> ══ eth0 10.213.k.(10+i)/24

Redis listens on the bridge address (:attr:`Hosts.root_address`); every host reaches it
over its own veth pair and nothing else, so taking one link down cuts that host off while
the others, and the test process in the root namespace, carry on. A cut keeps the host's
processes running, unaware: exactly what a network partition does to a worker.

Two ways to cut a host off (:class:`Side`): its own interface goes down (the host's
kernel knows at once: new connections fail with "network is unreachable"), or its port on
the bridge goes down (the host's interface loses carrier; its packets go nowhere, so every
call hangs until its timeout, as behind a dead switch).

Teardown kills every process started in a host (whole process groups, then anything
left in the namespace), deletes the veth pairs, the namespaces and the bridge, even when
setup failed half way. Everything here needs root (CAP_NET_ADMIN);
:func:`namespaces_available` says whether the kernel lets us, and why not.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import itertools
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support.managed import Managed

IP = "ip"
SUBNET_PREFIX = "10.213"  # 10.213.k.0/24, k picked per run among those not in use
KILL_WAIT = 10.0  # seconds to wait for a killed process group's leader to be reaped

_runs = itertools.count()  # one process may set up hosts several times: names stay unique


class Side(enum.Enum):
    """Which end of a host's link a cut takes down."""

    HOST = "host"  # the host's own eth0: it knows at once (ENETUNREACH)
    SWITCH = "switch"  # its port on the bridge: silence, every call times out


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip <args>``; with ``check``, raise with ip's own message when it fails."""
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


@functools.cache
def namespaces_available() -> tuple[bool, str]:
    """Whether this kernel lets us build hosts (a namespace, a veth into it, a bridge);
    if not, the reason the kernel gave. No ``ip`` command at all is an error, not a
    reason to skip: the tests need iproute2 installed, as they need redis-server."""
    name = f"jk{os.getpid()}probe"
    steps = [
        ("netns", "add", name),
        ("link", "add", f"{name}v", "type", "veth", "peer", "name", "eth0", "netns", name),
        ("link", "add", f"{name}b", "type", "bridge"),
    ]
    try:
        for step in steps:
            done = _ip(*step, check=False)
            if done.returncode != 0:
                reason = done.stderr.strip() or f"exit code {done.returncode}"
                return False, f"`ip {' '.join(step)}` failed: {reason}"
        return True, ""
    except OSError as exc:  # no `ip` at all: a missing tool, not a refusing kernel
        raise RuntimeError(f"cannot run `ip` ({exc}): install iproute2 (.ci/run does)") from exc
    finally:
        for undo in (("link", "del", f"{name}b"), ("netns", "del", name)):
            with contextlib.suppress(OSError):
                _ip(*undo, check=False)  # deleting the namespace takes the veth pair along


def _subnets_in_use() -> set[str]:
    """The ``10.213.k`` prefixes any address or route of the root namespace uses."""
    text = _ip("-4", "-o", "addr", "show").stdout + _ip("-4", "route", "show").stdout
    return {
        ".".join(word.split(".")[:3])
        for word in text.split()
        if word.startswith(SUBNET_PREFIX + ".")
    }


class Hosts(Managed):
    """``count`` hosts (numbered 1 to ``count``) on one bridge; a context manager.

    ``with Hosts(3) as hosts: hosts.run(1, [...], env=..., log_path=...)``.
    """

    def __init__(self, count: int) -> None:
        if not 1 <= count <= 200:
            raise ValueError("between 1 and 200 hosts")
        self.count = count
        self.tag = f"jk{os.getpid()}{chr(ord('a') + next(_runs) % 26)}"
        self.bridge = f"{self.tag}br"
        self.subnet = ""  # "10.213.k", chosen in setup
        self.processes: list[subprocess.Popen[bytes]] = []
        self._made_bridge = False
        self._made: list[int] = []  # hosts whose namespace exists

    # -- names and addresses ------------------------------------------------------------

    def _check(self, i: int) -> None:
        if not 1 <= i <= self.count:
            raise IndexError(f"no host {i}: hosts are 1 to {self.count}")

    def namespace(self, i: int) -> str:
        """The network namespace of host ``i``."""
        self._check(i)
        return f"{self.tag}h{i}"

    def veth(self, i: int) -> str:
        """The root-side end of host ``i``'s link (its port on the bridge)."""
        self._check(i)
        return f"{self.tag}v{i}"

    def address(self, i: int) -> str:
        """Host ``i``'s address."""
        self._check(i)
        return f"{self.subnet}.{10 + i}"

    @property
    def root_address(self) -> str:
        """The bridge's address in the root namespace: where servers for the hosts listen."""
        return f"{self.subnet}.1"

    # -- setup and teardown -------------------------------------------------------------

    def _pick_subnet(self) -> str:
        used = _subnets_in_use()
        start = os.getpid() % 250
        for k in ((start + step) % 250 + 1 for step in range(250)):
            if f"{SUBNET_PREFIX}.{k}" not in used:
                return f"{SUBNET_PREFIX}.{k}"
        raise RuntimeError(f"every {SUBNET_PREFIX}.k.0/24 is in use")

    def setup(self) -> None:
        self.subnet = self._pick_subnet()
        _ip("link", "add", self.bridge, "type", "bridge")  # STP off: ports forward at once
        self._made_bridge = True
        _ip("addr", "add", f"{self.root_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(1, self.count + 1):
            ns, veth = self.namespace(i), self.veth(i)
            _ip("netns", "add", ns)
            self._made.append(i)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def close(self) -> None:
        """Kill every process started in a host, then delete the namespaces and the bridge.
        Safe to call twice and after a failed setup."""
        for proc in self.processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(KILL_WAIT)
        for i in self._made:
            self._kill_namespace(i)
            # the veth pair first: a namespace outlives its name while sockets of killed
            # processes linger in it (a FIN sent to nowhere), and keeps its links till then
            _ip("link", "del", self.veth(i), check=False)
            _ip("netns", "del", self.namespace(i), check=False)
        self._made.clear()
        if self._made_bridge:
            _ip("link", "del", self.bridge, check=False)
            self._made_bridge = False

    teardown = close

    def _kill_namespace(self, i: int) -> None:
        """SIGKILL whatever still runs in host ``i`` (a process that left its group)."""
        done = _ip("netns", "pids", self.namespace(i), check=False)
        for pid in done.stdout.split():
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.kill(int(pid), signal.SIGKILL)

    def leftovers(self) -> list[str]:
        """Namespaces and links of ours that still exist (empty after :meth:`close`)."""
        found = [
            line.split()[0]
            for line in _ip("netns", "list").stdout.splitlines()
            if line.startswith(self.tag)
        ]
        for line in _ip("-o", "link", "show").stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith(self.tag):
                found.append(name)
        return found

    # -- processes and links ------------------------------------------------------------

    def run(
        self,
        i: int,
        args: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` inside host ``i``, in a process group of its own (killed in
        teardown), stdout and stderr appended to ``log_path``."""
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [IP, "netns", "exec", self.namespace(i), *args],  # ip execs args in place
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(proc)
        return proc

    def cut(self, i: int, side: Side = Side.HOST) -> None:
        """Cut host ``i`` off the network: its processes run on, unable to reach anyone."""
        if side is Side.HOST:
            _ip("-n", self.namespace(i), "link", "set", "eth0", "down")
        else:
            _ip("link", "set", self.veth(i), "down")

    def restore(self, i: int) -> None:
        """Undo :meth:`cut` (either side): host ``i`` is on the network again."""
        _ip("link", "set", self.veth(i), "up")
        # bringing eth0 up re-adds the route to the subnet that taking it down removed
        _ip("-n", self.namespace(i), "link", "set", "eth0", "up")
