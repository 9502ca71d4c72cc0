"""Keep every byte on this machine.

:func:`install` (run when ``inhouse`` is imported) forces the Hugging Face and
telemetry offline variables (whatever the environment said) and wraps the
socket layer so that nothing but loopback or a Unix socket is reached:

- ``socket.connect`` / ``connect_ex`` (TCP and UDP) to a non-loopback address;
- ``sendto`` / ``sendmsg`` (UDP) to a non-loopback address;
- name look-ups (``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``,
  ``gethostbyaddr``, ``getnameinfo``) of anything but loopback names and
  numeric addresses (a numeric address needs no DNS; connecting to it is
  still refused unless it is loopback).

Each fails at once with :class:`inhouse.errors.NetworkBlocked`. Servers bound
to 127.0.0.1 and clients connecting to them keep working.

    >>> import socket, inhouse
    >>> socket.create_connection(("203.0.113.5", 443), timeout=1)
    Traceback (most recent call last):
    ...
    inhouse.errors.NetworkBlocked: inhouse refused an outbound connection to 203.0.113.5:443: data and models never leave this machine. ...
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

from .errors import NetworkBlocked

# forced: a user's environment may not switch these off
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
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


def force_offline() -> None:
    """Set the offline variables (overriding the environment), also in libraries that already read them."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    constants = sys.modules.get("huggingface_hub.constants")  # read once, at its import
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
        if hasattr(constants, "HF_HUB_DISABLE_TELEMETRY"):
            constants.HF_HUB_DISABLE_TELEMETRY = True


def install() -> None:
    """Force the offline variables and refuse non-loopback traffic and DNS (idempotent)."""
    global _installed
    force_offline()
    if _installed:
        return
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign]
    if _original_sendmsg is not None:
        socket.socket.sendmsg = _guarded_sendmsg  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.gethostbyname = _guarded_gethostbyname
    socket.gethostbyname_ex = _guarded_gethostbyname_ex
    socket.gethostbyaddr = _guarded_gethostbyaddr
    socket.getnameinfo = _guarded_getnameinfo
    socket.getfqdn = _guarded_getfqdn
    _installed = True


def installed() -> bool:
    return _installed
