"""The rendezvous of a multi-rank job: every rank reaches rank 0's store in time, or fails in
one line.

torch's `env://` rendezvous waits up to 30 minutes by default, retries a name that does not
resolve for all of that time, and blocks in C++ where Python's SIGTERM handler cannot run (a
cancelled rank then lingers until SLURM kills it). Here every wait is a Python loop with a
deadline (`LAMM_RENDEZVOUS_TIMEOUT_S`, set by the launcher from `rendezvous_timeout_min`):

1. MASTER_ADDR is resolved to a numeric address once. A name that does not exist fails at once;
   a resolver that does not answer is asked again for up to a minute. A loopback address on a
   node other than the first cannot reach rank 0 and fails too.
2. Rank 0 binds MASTER_PORT on this host itself (one call checks the address is this host's and
   the port is free: two jobs sharing a first node would otherwise collide) and hands the bound
   socket to its TCPStore; the other ranks poll the port until it answers.
3. Every rank adds itself to a counter in the store and waits until all have joined.
4. The process group is built in a helper thread while this thread keeps waiting in Python.

A stop signal during any step ends the rank within seconds (`lamm.training.stop.prompt_exit`).
Failures raise RendezvousError with one line: what was tried (name, address, port, rank, host)
and what to set. Under torchrun, whose agent hosts the store, rank 0 is a client like the others.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT_ENV = "LAMM_RENDEZVOUS_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0
RESOLVE_RETRY_S = 60.0  # a resolver that does not answer (EAI_AGAIN) is asked again this long
POLL_S = 0.2
ADDRESS = (
    "set --master-addr (launcher.master_addr) to a name or address of the first node that every "
    "node resolves"
)
PORT = "set --master-port (launcher.master_port) to a free port"
REACH = (
    "check that every node reaches that address and port (firewall), or set --master-addr/"
    "--master-port (launcher.master_addr, launcher.master_port)"
)
INTERFACE = (
    "set --network-interface (launcher.network_interface) to the interface the nodes share "
    "(e.g. ib0, eth0)"
)
LATE = "raise --rendezvous-timeout-min (launcher.rendezvous_timeout_min) if ranks start late"


class RendezvousError(RuntimeError):
    """The ranks did not meet: one line naming what was tried and what to set."""


def timeout_from_env(env: Mapping[str, str] = os.environ) -> float:
    raw = env.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise RendezvousError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise RendezvousError(f"{TIMEOUT_ENV}={raw!r} must be positive")
    return value


class _Attempt:
    """What this rank is trying, for the one-line messages, and its deadline."""

    def __init__(
        self, env: Mapping[str, str], rank: int, world_size: int, timeout_s: float
    ) -> None:
        self.rank, self.world_size, self.timeout_s = rank, world_size, timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.host = socket.gethostname()
        self.name = env.get("MASTER_ADDR", "")
        port = env.get("MASTER_PORT", "")
        if not self.name or not port.isdigit() or not 0 < int(port) < 65536:
            raise RendezvousError(
                f"rank {rank} on {self.host}: MASTER_ADDR={self.name!r} MASTER_PORT={port!r}: "
                "both must be set (the launcher or torchrun sets them)"
            )
        self.port = int(port)
        self.address = ""

    def where(self) -> str:
        address = f" ({self.address})" if self.address and self.address != self.name else ""
        return (
            f"rank {self.rank}/{self.world_size} on {self.host}: MASTER_ADDR={self.name}"
            f"{address} MASTER_PORT={self.port}"
        )

    def fail(self, what: str, advice: str) -> RendezvousError:
        return RendezvousError(f"rendezvous failed: {self.where()}: {what}; {advice}")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timed_out(self, what: str, advice: str) -> RendezvousError:
        waited = (
            f"{self.timeout_s:.0f} s" if self.timeout_s < 120 else f"{self.timeout_s / 60:.1f} min"
        )
        return self.fail(f"{what} within {waited}", f"{advice}; {LATE}")


def _resolve(attempt: _Attempt) -> str:
    retry_until = time.monotonic() + min(RESOLVE_RETRY_S, max(attempt.remaining(), 0.0))
    while True:
        try:
            infos = socket.getaddrinfo(attempt.name, attempt.port, type=socket.SOCK_STREAM)
        except socket.gaierror as err:
            if err.errno != socket.EAI_AGAIN or time.monotonic() > retry_until:
                raise attempt.fail(f"the name does not resolve ({err.strerror})", ADDRESS) from None
            time.sleep(1.0)
            continue
        ipv4 = [info[4][0] for info in infos if info[0] == socket.AF_INET]
        return ipv4[0] if ipv4 else infos[0][4][0]


def _bind_master_port(attempt: _Attempt) -> socket.socket:
    """A listening socket on MASTER_PORT of this host, or the reason there cannot be one."""
    family = socket.AF_INET6 if ":" in attempt.address else socket.AF_INET
    try:  # the address must be this host's: rank 0 serves it
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((attempt.address, 0))
    except OSError as err:
        raise attempt.fail(
            f"rank 0 runs on {attempt.host}, which does not own that address ({err.strerror})",
            ADDRESS,
        ) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as TCPStore: TIME_WAIT is fine
    try:
        sock.bind(("::" if family == socket.AF_INET6 else "", attempt.port))
        sock.listen(512)
    except OSError as err:
        sock.close()
        taken = err.errno == errno.EADDRINUSE
        raise attempt.fail(
            "the port is taken on this node (another job?)" if taken else err.strerror, PORT
        ) from None
    return sock


def _wait_for_port(attempt: _Attempt) -> None:
    """Poll rank 0's port until it accepts a connection."""
    while True:
        try:
            timeout = max(0.1, min(2.0, attempt.remaining()))
            with socket.create_connection((attempt.address, attempt.port), timeout=timeout):
                return
        except OSError:
            if attempt.remaining() <= 0:
                raise attempt.timed_out("rank 0 did not answer", REACH) from None
            time.sleep(POLL_S)


def _in_helper_thread(work: Callable[[], Any], attempt: _Attempt, what: str, advice: str) -> Any:
    """`work()` in a daemon thread while this thread waits in Python (signals stay handled)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as err:  # handed to the waiting thread
            result["error"] = err

    thread = threading.Thread(target=run, name="rendezvous", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_S)
        if thread.is_alive() and attempt.remaining() <= 0:
            raise attempt.timed_out(what, advice)
    if "error" in result:
        raise attempt.fail(f"{what}: {str(result['error']).splitlines()[0]}", advice)
    return result.get("value")


def _join(store: Any, attempt: _Attempt, key: str) -> None:
    """Count this rank in and wait until every rank is (each call returns at once)."""
    try:
        store.add(key, 1)
        while (joined := store.add(key, 0)) < attempt.world_size:
            if attempt.remaining() <= 0:
                raise attempt.timed_out(
                    f"only {joined} of {attempt.world_size} ranks joined",
                    "the others did not start or cannot reach rank 0 (see their logs)",
                )
            time.sleep(POLL_S)
    except RuntimeError as err:  # the store's errors (DistStoreError, DistNetworkError) included
        if isinstance(err, RendezvousError):
            raise
        raise attempt.fail(
            f"rank 0's store went away ({str(err).splitlines()[0]})", "see rank 0's log"
        ) from None


def rendezvous(
    backend: str,
    rank: int,
    world_size: int,
    *,
    device_id: Any = None,
    timeout_s: float | None = None,
    env: Mapping[str, str] = os.environ,
) -> None:
    """Join the default process group of `world_size` ranks (see the module docstring)."""
    import torch.distributed as dist
    from torch.distributed import TCPStore
    from torch.distributed.constants import default_pg_timeout

    attempt = _Attempt(env, rank, world_size, timeout_s or timeout_from_env(env))
    attempt.address = _resolve(attempt)
    local_world = int(env.get("LOCAL_WORLD_SIZE") or world_size)
    first_node = rank < local_world  # ranks are placed node by node (SLURM block, torchrun)
    if ipaddress.ip_address(attempt.address.split("%")[0]).is_loopback and not first_node:
        raise attempt.fail("a loopback address, which other nodes cannot reach", ADDRESS)
    agent_store = env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    log.info("rendezvous: %s, waiting up to %.0f s", attempt.where(), attempt.timeout_s)
    op_timeout = datetime.timedelta(seconds=max(attempt.remaining(), 1.0))
    if rank == 0 and not agent_store:
        listening = _bind_master_port(attempt)
        store = TCPStore(
            attempt.address,
            attempt.port,
            world_size,
            is_master=True,
            timeout=op_timeout,
            wait_for_workers=False,
            master_listen_fd=listening.detach(),  # the store owns the bound socket now
        )
    else:
        _wait_for_port(attempt)
        store = _in_helper_thread(
            lambda: TCPStore(attempt.address, attempt.port, world_size, timeout=op_timeout),
            attempt,
            "rank 0's store did not accept this rank",
            REACH,
        )
    restart = env.get("TORCHELASTIC_RESTART_COUNT", "0")  # torchrun's store outlives restarts
    _join(store, attempt, f"lamm/rendezvous/{restart}/joined")
    store.set_timeout(default_pg_timeout)  # collectives keep torch's timeout

    def build_group() -> None:
        if getattr(device_id, "type", None) == "cuda":  # the current device is per thread
            import torch

            torch.cuda.set_device(device_id)
        dist.init_process_group(
            backend, store=store, rank=rank, world_size=world_size, device_id=device_id
        )

    _in_helper_thread(
        build_group,
        attempt,
        f"the {backend} process group did not form (the ranks could not connect to each other)",
        INTERFACE,
    )
    log.info("rendezvous: %d ranks joined", world_size)
