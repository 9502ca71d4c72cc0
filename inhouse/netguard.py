"""Keep every byte on this machine.

:func:`install` (run when ``inhouse`` is imported) sets the Hugging Face and
telemetry offline variables and wraps ``socket.socket.connect`` so that any
outbound connection other than loopback or a Unix socket fails at once:

    >>> import socket, inhouse
    >>> socket.create_connection(("203.0.113.5", 443), timeout=1)
    Traceback (most recent call last):
    ...
    inhouse.errors.NetworkBlocked: inhouse refused an outbound connection to 203.0.113.5:443 ...
"""

from __future__ import annotations

import ipaddress
import os
import socket

from .errors import NetworkBlocked

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_installed = False


def is_local(address) -> bool:
    """True for loopback addresses, ``localhost`` and Unix-socket paths."""
    if not isinstance(address, tuple):  # AF_UNIX path (str or bytes)
        return True
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%", 1)[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other name would need DNS: refuse


def _check(sock: socket.socket, address) -> None:
    if sock.family == getattr(socket, "AF_UNIX", None) or is_local(address):
        return
    where = f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) > 1 else str(address)
    raise NetworkBlocked(
        f"inhouse refused an outbound connection to {where}: data and models never leave this machine.",
        fix="Register the model or file locally (inhouse models add NAME PATH) instead of downloading it.",
    )


def _guarded_connect(self, address):
    _check(self, address)
    return _original_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(self, address)
    return _original_connect_ex(self, address)


def install() -> None:
    """Set the offline variables and refuse non-loopback connections (idempotent)."""
    global _installed
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if _installed:
        return
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    _installed = True


def installed() -> bool:
    return _installed
