"""Keep every byte on this machine.

Two layers, both opt-in for a host process and on in every door inhouse owns
(the ``inhouse`` command, ``inhouse serve``, its job workers, the pipeline's
Ray workers):

1. :func:`telemetry_off` switches off the usage statistics, telemetry and
   update checks of every dependency that has one, by environment variable,
   before that library loads. Native code (ONNX Runtime's telemetry threads,
   Ray's usage reporter) never passes through Python's socket module, so only
   these variables stop it. ``import inhouse`` sets them as *defaults* (a
   variable the environment already sets is kept): they only stop reports
   about the process, never a connection the host program makes itself.
2. :func:`install` (and the :func:`offline` context) also forces the Hugging
   Face offline variables and wraps the socket layer so that nothing but
   loopback or a Unix socket is reached:

- ``socket.connect`` / ``connect_ex`` (TCP and UDP) to a non-loopback address;
- ``sendto`` / ``sendmsg`` (UDP) to a non-loopback address;
- name look-ups (``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``,
  ``gethostbyaddr``, ``getnameinfo``) of anything but loopback names and
  numeric addresses (a numeric address needs no DNS; connecting to it is
  still refused unless it is loopback).

Each fails at once with :class:`inhouse.errors.NetworkBlocked`. Servers bound
to 127.0.0.1 and clients connecting to them keep working.

    >>> import socket, inhouse
    >>> with inhouse.offline():
    ...     socket.create_connection(("203.0.113.5", 443), timeout=1)
    Traceback (most recent call last):
    ...
    inhouse.errors.NetworkBlocked: inhouse refused an outbound connection to 203.0.113.5:443: data and models never leave this machine. ...

``tests/test_egress.py`` proves it for native code too: classify, train, serve
and a Ray job run under ``strace`` and no process tries to resolve or reach a
non-loopback address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
import threading

from .errors import NetworkBlocked

# Telemetry, usage statistics and update checks: off before any library that reads them loads. Found by
# reading the installed libraries (grep for TELEMETRY, USAGE_STATS, ANALYTICS, UPDATE_CHECK, DO_NOT_TRACK).
# Set as defaults by ``import inhouse``: they stop only reports about the process, never a host's own calls.
TELEMETRY_ENV = {
    "ORT_DISABLE_TELEMETRY": "1",             # onnxruntime: native telemetry threads, ~9 s after the first run
    "RAY_USAGE_STATS_ENABLED": "0",           # ray: usage report from the head node
    "RAY_USAGE_STATS_PROMPT_ENABLED": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",          # huggingface_hub (and transformers, sentence-transformers)
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "DO_NOT_TRACK": "1",                      # the cross-tool convention (huggingface_hub reads it)
    "DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
}
# Forced inside the guard only (a user's environment may not switch these off): no Hub downloads, no training
# reports to hosted trackers. Not set on import: a host program may use the Hub or wandb itself.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "WANDB_MODE": "disabled",                 # transformers' Trainer reports to any tracker that is installed
    "DISABLE_MLFLOW_INTEGRATION": "TRUE",
}
# defaults only: quieter output, which a user may change
QUIET_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_original_sendto = socket.socket.sendto
_original_sendmsg = getattr(socket.socket, "sendmsg", None)
_original_getaddrinfo = socket.getaddrinfo
_original_gethostbyname = socket.gethostbyname
_original_gethostbyname_ex = socket.gethostbyname_ex
_original_gethostbyaddr = socket.gethostbyaddr
_original_getnameinfo = socket.getnameinfo
_original_getfqdn = socket.getfqdn
_installed = False
FIX = "Register the model or file locally (inhouse models add NAME PATH) instead of downloading it."


def _host_text(host) -> str:
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    return str(host).split("%", 1)[0].strip().rstrip(".")


def _is_local_name(host: str) -> bool:
    return host.lower() in _LOCAL_NAMES


def is_local(address) -> bool:
    """True for loopback addresses, ``localhost`` and Unix-socket paths."""
    if not isinstance(address, tuple):  # AF_UNIX path (str or bytes)
        return True
    host = _host_text(address[0])
    if _is_local_name(host):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other name would need DNS: refuse


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _where(address) -> str:
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) > 1 else str(address)


def _check(sock: socket.socket, address, what: str = "an outbound connection") -> None:
    if sock.family == getattr(socket, "AF_UNIX", None) or is_local(address):
        return
    raise NetworkBlocked(
        f"inhouse refused {what} to {_where(address)}: data and models never leave this machine.", fix=FIX)


def _check_lookup(host, what: str) -> None:
    """Refuse a name look-up that would ask DNS (anything but loopback names and numeric addresses)."""
    if host is None:
        return
    text = _host_text(host)
    if text == "" or _is_local_name(text) or _numeric(text):
        return
    raise NetworkBlocked(f"inhouse refused {what} of {text!r}: a name look-up would ask a DNS server, and data "
                         "and models never leave this machine.", fix=FIX)


def _guarded_connect(self, address):
    _check(self, address)
    return _original_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(self, address)
    return _original_connect_ex(self, address)


def _guarded_sendto(self, data, *args):
    if args:  # sendto(data, address) or sendto(data, flags, address)
        _check(self, args[-1], "a datagram")
    return _original_sendto(self, data, *args)


def _guarded_sendmsg(self, buffers, ancdata=(), flags=0, address=None):
    if address is not None:
        _check(self, address, "a datagram")
        return _original_sendmsg(self, buffers, ancdata, flags, address)
    return _original_sendmsg(self, buffers, ancdata, flags)


def _guarded_getaddrinfo(host, *args, **kwargs):
    _check_lookup(host, "the DNS look-up")
    return _original_getaddrinfo(host, *args, **kwargs)


def _guarded_gethostbyname(host):
    _check_lookup(host, "the DNS look-up")
    return _original_gethostbyname(host)


def _guarded_gethostbyname_ex(host):
    _check_lookup(host, "the DNS look-up")
    return _original_gethostbyname_ex(host)


def _guarded_gethostbyaddr(host):
    text = _host_text(host)
    if not (_is_local_name(text) or (_numeric(text) and ipaddress.ip_address(text).is_loopback)):
        raise NetworkBlocked(f"inhouse refused the reverse DNS look-up of {text!r}: data and models never leave "
                             "this machine.", fix=FIX)
    return _original_gethostbyaddr(host)


def _guarded_getnameinfo(sockaddr, flags):
    numeric = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    if (flags & numeric) != numeric and not is_local(sockaddr):
        raise NetworkBlocked(f"inhouse refused the reverse DNS look-up of {_where(sockaddr)}: data and models never "
                             "leave this machine.", fix="Ask for numeric results (NI_NUMERICHOST | NI_NUMERICSERV).")
    return _original_getnameinfo(sockaddr, flags)


def _guarded_getfqdn(name: str = "") -> str:
    """``socket.getfqdn`` without a DNS look-up for other hosts (http.server calls it when it binds)."""
    text = _host_text(name or "")
    if text in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    if _is_local_name(text) or (_numeric(text) and ipaddress.ip_address(text).is_loopback):
        return _original_getfqdn(name)
    return text


def telemetry_off(*, force: bool = False) -> dict[str, str]:
    """Switch off every dependency's telemetry and update checks (defaults only, unless ``force``).

    Returns the variables as set, for processes started elsewhere (a Ray cluster's ``runtime_env``).
    """
    for key, value in TELEMETRY_ENV.items():
        if force:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in TELEMETRY_ENV}


def worker_env() -> dict[str, str]:
    """The variables a process inhouse starts needs from birth (telemetry off, Hub offline)."""
    return {**TELEMETRY_ENV, **OFFLINE_ENV}


def force_offline() -> None:
    """Set the offline and telemetry variables (overriding the environment), also in libraries that already read them."""
    telemetry_off(force=True)
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    constants = sys.modules.get("huggingface_hub.constants")  # read once, at its import
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
        if hasattr(constants, "HF_HUB_DISABLE_TELEMETRY"):
            constants.HF_HUB_DISABLE_TELEMETRY = True


_PATCHES = (
    (socket.socket, "connect", _guarded_connect), (socket.socket, "connect_ex", _guarded_connect_ex),
    (socket.socket, "sendto", _guarded_sendto), (socket, "getaddrinfo", _guarded_getaddrinfo),
    (socket, "gethostbyname", _guarded_gethostbyname), (socket, "gethostbyname_ex", _guarded_gethostbyname_ex),
    (socket, "gethostbyaddr", _guarded_gethostbyaddr), (socket, "getnameinfo", _guarded_getnameinfo),
    (socket, "getfqdn", _guarded_getfqdn),
) + (((socket.socket, "sendmsg", _guarded_sendmsg),) if _original_sendmsg is not None else ())
_lock = threading.Lock()
_depth = 0  # open offline() contexts
_permanent = False  # install() holds the guard for the rest of the process
_saved: list[tuple[object, str, object]] = []


def _patch() -> None:
    global _installed
    if _installed:
        return
    _saved[:] = [(owner, name, getattr(owner, name)) for owner, name, _ in _PATCHES]
    for owner, name, guarded in _PATCHES:
        setattr(owner, name, guarded)
    _installed = True


def install() -> None:
    """Turn the guard on for the rest of this process (idempotent): the doors inhouse owns call it at their start.

    The ``inhouse`` command, ``inhouse serve`` (and each of its uvicorn worker processes), the job workers.
    """
    global _permanent
    with _lock:
        force_offline()
        _patch()
        _permanent = True  # a closing offline() leaves it on


@contextlib.contextmanager
def offline():
    """The guard for a block of a host program: inside it nothing but loopback is reached, after it the
    socket layer and the variables are as they were (unless :func:`install` turned it on for good). The
    socket layer is the process's: while the block runs, the guard holds for every thread. Blocks nest.

        >>> import socket, inhouse
        >>> with inhouse.offline():
        ...     socket.getaddrinfo("huggingface.co", 443)
        Traceback (most recent call last):
        ...
        inhouse.errors.NetworkBlocked: inhouse refused the DNS look-up of 'huggingface.co': ...
    """
    global _depth, _installed
    with _lock:
        saved_env = {k: os.environ.get(k) for k in (*OFFLINE_ENV, *TELEMETRY_ENV)}
        hub = sys.modules.get("huggingface_hub.constants")
        hub_offline = getattr(hub, "HF_HUB_OFFLINE", None)
        force_offline()
        _patch()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and not _permanent:
                for owner, name, original in _saved:
                    setattr(owner, name, original)
                _installed = False
                if hub is not None and hub_offline is not None:
                    hub.HF_HUB_OFFLINE = hub_offline
                for k, v in saved_env.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


def installed() -> bool:
    """True while the socket guard is on."""
    return _installed
