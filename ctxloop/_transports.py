"""Connections on asyncio's own loop: each transport carries its connection's context, as in CPython 3.15.

CPython 3.15's selector transports keep a ``_context`` and schedule every
callback of theirs in it: ``call_soon(..., context=)`` and
``_add_reader``/``_add_writer(..., context=)`` (cpython gh-140947). On 3.8-3.14
a ctxloop asyncio loop gives the same to its stream-socket transports (TLS
included) and, on every Python, to datagram and pipe transports: each is
built with a ``ConnectionLoop`` as its loop, the loop itself except that the
callbacks the transport schedules run in the connection's context. The
transport classes, the protocol, ``transport.get_protocol()``, flow control
and errors are asyncio's own; only ``transport._loop`` is the wrapper.

The connection's context reaches the transport through the protocol factory
(``_connections.py``): the factory hands over (protocol, context), and the
``_make_*_transport`` method that asyncio calls right after it, with that
protocol, takes it.
"""

from __future__ import annotations

import contextvars
import sys
from asyncio import selector_events, sslproto
from typing import Any, Callable, Dict, Optional

from ._connections import DATAGRAM, PIPE, STREAM, SUBPROCESS, Mechanisms, next_function

__all__ = ["ConnectionLoop", "transport_makers_for"]

_copy_context = contextvars.copy_context
_NATIVE_HANDLE_CONTEXT = sys.version_info >= (3, 15)  # _add_reader/_add_writer take context=


class ConnectionLoop:
    """The loop a connection's transport holds: the ctxloop loop, with its callbacks in the connection's context."""

    __slots__ = ("_ctxloop_context", "_ctxloop_loop")

    def __init__(self, loop: Any, context: contextvars.Context) -> None:
        self._ctxloop_loop = loop
        self._ctxloop_context = context

    def call_soon(self, callback: Callable[..., Any], *args: Any, context: Optional[contextvars.Context] = None) -> Any:
        """The loop's call_soon, in the connection's context unless one is given."""
        return self._ctxloop_loop.call_soon(
            callback, *args, context=self._ctxloop_context if context is None else context
        )

    if _NATIVE_HANDLE_CONTEXT:

        def _add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
            return self._ctxloop_loop._add_reader(
                fd, callback, *args, context=self._ctxloop_context if context is None else context
            )

        def _add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
            return self._ctxloop_loop._add_writer(
                fd, callback, *args, context=self._ctxloop_context if context is None else context
            )

    else:

        def _add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
            loop = self._ctxloop_loop
            handle = loop._add_reader(fd, callback, *args)
            # The handle the selector now holds for reading fd (3.8 returns nothing).
            held = handle if handle is not None else loop._selector.get_key(fd).data[0]
            held._context = self._ctxloop_context if context is None else context
            return handle

        def _add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:
            loop = self._ctxloop_loop
            handle = loop._add_writer(fd, callback, *args)
            held = handle if handle is not None else loop._selector.get_key(fd).data[1]
            held._context = self._ctxloop_context if context is None else context
            return handle

    def __getattr__(self, name: str) -> Any:
        # Everything else is the loop's (_remove_reader, _transports, get_debug, ...).
        return getattr(self._ctxloop_loop, name)

    def __repr__(self) -> str:
        return repr(self._ctxloop_loop)


def _stash(loop: Any, protocol: Any, context: contextvars.Context) -> Any:
    loop._ctxloop_pending = (protocol, context)
    return protocol


def _context_for(loop: Any, protocol: Any) -> contextvars.Context:
    """The context the protocol factory handed over for *protocol*, else a copy of the current one."""
    pending = getattr(loop, "_ctxloop_pending", None)
    if pending is not None:
        loop._ctxloop_pending = None
        if pending[0] is protocol:
            return pending[1]  # type: ignore[no-any-return]
    return _copy_context()


def _ctxloop_transport_binder(self: Any) -> Callable[[Any, contextvars.Context], Any]:
    return lambda protocol, context: _stash(self, protocol, context)


def _make_socket_transport(self: Any, sock: Any, protocol: Any, waiter: Any = None, **kwargs: Any) -> Any:
    made = next_function(type(self), "_make_socket_transport")
    return made(ConnectionLoop(self, _context_for(self, protocol)), sock, protocol, waiter, **kwargs)


# Whether this Python's own body checks that no transport uses the socket yet (3.12+).
_SSL_CHECKS_THE_FD = (
    "_ensure_fd_no_transport" in selector_events.BaseSelectorEventLoop._make_ssl_transport.__code__.co_names  # type: ignore[attr-defined]
)


def _make_ssl_transport(
    self: Any,
    rawsock: Any,
    protocol: Any,
    sslcontext: Any,
    waiter: Any = None,
    *,
    server_side: bool = False,
    server_hostname: Any = None,
    extra: Any = None,
    server: Any = None,
    **timeouts: Any,
) -> Any:
    # asyncio's own body (the same from 3.8 to 3.14, but for the timeouts it
    # passes on and the socket check of 3.12+), with the raw socket's
    # transport given the connection's loop. The TLS protocol keeps the loop
    # itself, as in 3.15.
    context = _context_for(self, protocol)
    if _SSL_CHECKS_THE_FD:
        self._ensure_fd_no_transport(rawsock)
    ssl_protocol = sslproto.SSLProtocol(self, protocol, sslcontext, waiter, server_side, server_hostname, **timeouts)
    selector_events._SelectorSocketTransport(  # type: ignore[attr-defined]
        ConnectionLoop(self, context), rawsock, ssl_protocol, extra=extra, server=server
    )
    return ssl_protocol._app_transport


def _make_datagram_transport(self: Any, sock: Any, protocol: Any, *args: Any, **kwargs: Any) -> Any:
    made = next_function(type(self), "_make_datagram_transport")
    return made(ConnectionLoop(self, _context_for(self, protocol)), sock, protocol, *args, **kwargs)


def _make_read_pipe_transport(self: Any, pipe: Any, protocol: Any, *args: Any, **kwargs: Any) -> Any:
    made = next_function(type(self), "_make_read_pipe_transport")
    return made(ConnectionLoop(self, _context_for(self, protocol)), pipe, protocol, *args, **kwargs)


def _make_write_pipe_transport(self: Any, pipe: Any, protocol: Any, *args: Any, **kwargs: Any) -> Any:
    made = next_function(type(self), "_make_write_pipe_transport")
    return made(ConnectionLoop(self, _context_for(self, protocol)), pipe, protocol, *args, **kwargs)


def _child_watcher_callback(self: Any) -> Callable[[int, int, Any], None]:
    # Looked up when the subprocess is registered with its child watcher, in
    # the task that spawned it: the callback then runs process_exited in a
    # copy of that task's context, not in the watcher thread's (3.8-3.11).
    context = _copy_context()
    base = next_function(type(self), "_child_watcher_callback")

    def callback(pid: int, returncode: int, transp: Any) -> None:
        context.run(base, self, pid, returncode, transp)

    return callback


_MAKERS: Dict[str, Dict[str, Callable[..., Any]]] = {
    STREAM: {"_make_socket_transport": _make_socket_transport, "_make_ssl_transport": _make_ssl_transport},
    DATAGRAM: {"_make_datagram_transport": _make_datagram_transport},
    PIPE: {
        "_make_read_pipe_transport": _make_read_pipe_transport,
        "_make_write_pipe_transport": _make_write_pipe_transport,
    },
}


def transport_makers_for(found: Mechanisms) -> Dict[str, Any]:
    """What the class of a ctxloop asyncio loop gets for the kinds kept by the transport mechanism."""
    methods: Dict[str, Any] = {}
    for kind, makers in _MAKERS.items():
        if found.get(kind) == "transport":
            methods.update(makers)
    if methods:
        methods["_ctxloop_transport_binder"] = _ctxloop_transport_binder
    if found.get(SUBPROCESS) == "watcher":
        methods["_child_watcher_callback"] = property(_child_watcher_callback)
    return methods
