"""Connections: every callback of a connection's protocol runs in one context of the connection's own (C1-C4).

CPython 3.15 gives each stream-socket connection one context (gh-140947): a
copy, made when the connection is accepted, of the context its server was
created in; or, for a client, a copy of the caller's context taken before the
protocol factory runs. Every callback of its protocol runs in it, whichever
task pauses, resumes, writes to or closes the transport. A ctxloop loop does
the same on every Python and every loop, and extends it to datagram
endpoints, pipes and subprocesses (as uvloop does).

Two mechanisms, chosen per loop and connection kind in ``mechanisms()`` (the
one place that knows what each loop already does):

* ``"transport"`` (asyncio's own loop, see ``_transports.py``): the transport
  carries the connection's context and every callback it schedules runs in it,
  as in CPython 3.15. Nothing of the protocol changes (a protocol with
  ``__slots__``, aiohttp's say, is kept as is).
* ``"protocol"`` (any other loop): each callback of the protocol object is
  bound to the context, as an instance attribute that enters the context
  around the protocol's own method. ``transport.get_protocol()`` is still the
  protocol, ``isinstance`` still holds. A protocol switched in with
  ``transport.set_protocol()`` from one of the connection's callbacks is bound
  to the same context. ``"protocol-but-pause"`` leaves ``pause_writing``
  (called inside ``write()``) where the loop calls it, as 3.15 does
  (``"rloop"`` too, without following protocol switches, which rloop's
  transports cannot make); ``"copies"`` runs each callback in a new copy of the context (what 3.15 and
  uvloop do for a subprocess's own callbacks).
* ``None``: the loop keeps the rule natively (asyncio 3.15 for stream sockets,
  uvloop for datagrams, pipes and subprocesses): nothing is added.

Either way the protocol factory runs as natively: for a server, in the
connection's context (so what it sets is the connection's); for a client, in
the caller's context, after the connection's context was copied.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
from asyncio import selector_events
from typing import Any, Callable, Dict, Optional, Tuple

from ._entered import is_entered

__all__ = [
    "CALLBACKS",
    "ConnectionEntryPoints",
    "bind_protocol",
    "entry_points_for",
    "connection_methods",
    "mechanisms",
    "next_function",
    "next_method",
]

# Every callback a loop calls on a protocol (asyncio.Protocol, BufferedProtocol,
# DatagramProtocol, SubprocessProtocol, and the pipe protocols).
CALLBACKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "eof_received",
    "get_buffer",
    "buffer_updated",
    "pause_writing",
    "resume_writing",
    "datagram_received",
    "error_received",
    "pipe_data_received",
    "pipe_connection_lost",
    "process_exited",
)

STREAM, DATAGRAM, PIPE, SUBPROCESS = "stream", "datagram", "pipe", "subprocess"
Mechanisms = Dict[str, Optional[str]]


def mechanisms(loop_class: type) -> Mechanisms:
    """How a ctxloop loop of *loop_class* keeps each kind of connection in its context (see the module docstring)."""
    package = loop_class.__module__.partition(".")[0]
    if issubclass(loop_class, selector_events.BaseSelectorEventLoop) and sys.platform != "win32":
        # asyncio's selector loop (and any subclass of it): its transports.
        # A subprocess's own callbacks run in copies of the caller's context
        # on every loop (3.15 and uvloop alike): its pipes are what need one.
        # Before 3.12 a thread watches the child and process_exited runs in its
        # empty context ("watcher": in a copy of the caller's, as from 3.12).
        stream = None if sys.version_info >= (3, 15) else "transport"
        subprocess = "watcher" if sys.version_info < (3, 12) else None
        return {STREAM: stream, DATAGRAM: "transport", PIPE: "transport", SUBPROCESS: subprocess}
    if package == "uvloop":
        # uvloop keeps one context per transport, but its servers share one
        # between all their connections, and a client's is taken after the
        # protocol factory ran. (It calls pause_writing in a copy of that
        # context, not in the writer's as 3.15: the connection's it is.)
        return {STREAM: "protocol", DATAGRAM: None, PIPE: None, SUBPROCESS: None}
    # Any other loop (rloop's, a user's): every callback bound, but
    # pause_writing, which a transport calls inside write(), left in the
    # writer's context as 3.15 does; a subprocess's callbacks each in a copy
    # of the caller's context. ("rloop": as "protocol-but-pause", for
    # transports that cannot switch protocols.)
    bound = "rloop" if package == "rloop" else "protocol-but-pause"
    return {STREAM: bound, DATAGRAM: "protocol", PIPE: bound, SUBPROCESS: "copies"}


# --- binding a protocol's callbacks to a context ---


class _Connection:
    """What the bound callbacks of one connection share: its context, its protocol, its transport, how they bind."""

    __slots__ = ("bound", "context", "copies", "follow", "left", "protocol", "transport")

    def __init__(self, context: contextvars.Context, protocol: Any, mechanism: str = "protocol") -> None:
        self.context = context
        self.protocol = protocol
        self.transport: Any = None
        self.copies = mechanism == "copies"
        self.left: Tuple[str, ...] = ("pause_writing",) if mechanism in ("protocol-but-pause", "rloop") else ()
        # rloop's transports cannot switch protocols (NotImplementedError): nothing to follow there.
        self.follow = mechanism != "rloop"
        self.bound: Tuple[str, ...] = ()

    def like(self, protocol: Any) -> "_Connection":
        """The same connection, for a protocol switched in."""
        other = _Connection(self.context, protocol)
        other.copies, other.left, other.follow, other.transport = self.copies, self.left, self.follow, self.transport
        return other

    def lost(self, exc: Any = None) -> None:
        """After connection_lost, the last callback: the bound callbacks go (they hold the protocol)."""
        # The bound callbacks hold the protocol (a cycle through its own attributes).
        protocol = self.protocol
        if getattr(protocol, _BOUND, None) is self:
            delattr(protocol, _BOUND)
            for name in self.bound:
                try:
                    delattr(protocol, name)
                except AttributeError:
                    pass
        self.transport = None

    def switched(self, *args: Any) -> None:
        """After a callback in which the transport's protocol changed (a websocket upgrade, say)."""
        transport = self.transport
        current = transport.get_protocol()
        # The same connection: the new protocol runs in the same context.
        if _bound_to(current) is None and _bind(self.like(current)):
            transport.set_protocol(current)  # loops that cache the callbacks (uvloop) take the bound ones


# What runs after a bound callback: nothing, the connection's own method (with
# the callback's arguments), a check that the transport's protocol is still
# this one (calling the method when not), or (connection_made) keeping the
# transport it was given as the connection's.
AFTER_NOTHING, AFTER_CALL, AFTER_SWITCH, AFTER_MADE = 0, 1, 2, 3
_DATA = ("data_received", "buffer_updated", "eof_received", "datagram_received", "pipe_data_received")


def in_context(  # noqa: PLR0917 - the compiled twin takes them positionally, as fast as it can
    context: contextvars.Context, method: Callable[..., Any], connection: Any, after: Any, mode: int, copies: bool
) -> Callable[..., Any]:
    """*method*, run in *context* (each call in a new copy of it, with *copies*), then *after* per *mode*.

    In *context* itself unless it is entered already: called from another
    callback of the connection (a protocol calling its own method, or a new
    protocol's connection_made called by the one it replaces).
    """
    run = context.run

    def call(args: Tuple[Any, ...]) -> Any:
        if copies:
            return context.copy().run(method, *args)
        return method(*args) if is_entered(context) else run(method, *args)

    if mode == AFTER_CALL:

        def bound(*args: Any) -> Any:
            result = call(args)
            after(*args)
            return result

    elif mode == AFTER_SWITCH:
        protocol = method.__self__  # type: ignore[attr-defined]

        def bound(*args: Any) -> Any:
            result = call(args)
            transport = connection.transport
            if transport is not None and transport.get_protocol() is not protocol:
                after()
            return result

    elif mode == AFTER_MADE:

        def bound(*args: Any) -> Any:
            result = call(args)
            connection.transport = args[0]
            return result

    else:

        def bound(*args: Any) -> Any:
            return call(args)

    return bound


_BOUND = "_ctxloop_connection"


def _bound_to(protocol: Any) -> Any:
    """The connection *protocol*'s callbacks are bound to, or None."""
    return getattr(protocol, _BOUND, None)


# asyncio's protocol base classes: their callbacks do nothing (and read no
# context variable), so a protocol that keeps them needs them unbound.
_NO_OPS = {
    (name, function)
    for base in (
        asyncio.BaseProtocol,
        asyncio.Protocol,
        asyncio.BufferedProtocol,
        asyncio.DatagramProtocol,
        asyncio.SubprocessProtocol,
    )
    for name, function in vars(base).items()
    if name in CALLBACKS
}
# Bound whenever anything is: the transport, to follow a protocol switch;
# the end of the connection, to let the bound callbacks go.
_ALWAYS = ("connection_made", "connection_lost")


_plans: Dict[Tuple[type, Tuple[str, ...]], Tuple[Tuple[str, Any], ...]] = {}


def _plan(cls: type, left: Tuple[str, ...]) -> Tuple[Tuple[str, Any], ...]:
    """The callbacks of protocol class *cls* to bind (name, function): made once per class."""
    plan = _plans.get((cls, left))
    if plan is None:
        names = [
            name
            for name in CALLBACKS
            if name not in left and getattr(cls, name, None) is not None and (name, getattr(cls, name)) not in _NO_OPS
        ]
        if names:  # nothing it does depends on a context otherwise
            names += [name for name in _ALWAYS if name not in names and hasattr(cls, name)]
        plan = _plans[(cls, left)] = tuple((name, getattr(cls, name)) for name in names)
    return plan


def _bind(connection: _Connection) -> bool:
    # setattr/getattr, never the protocol's __dict__: reading __dict__ turns
    # the inline attribute values of CPython 3.11+ into a real dict, after which
    # every attribute access of the protocol's own code is slower.
    # Once per connection, and on its side of a new connection's cost: no helper
    # function is called here but the first time a protocol class is seen.
    protocol = connection.protocol
    cls = type(protocol)
    plan = _plans.get((cls, connection.left))
    if plan is None:
        plan = _plan(cls, connection.left)
    if not plan:
        return True
    try:
        setattr(protocol, _BOUND, connection)
    except AttributeError:
        return False  # no instance dictionary (__slots__, a C type): left as it is
    bound = []
    context, copies = connection.context, connection.copies
    for name, function in plan:
        method = getattr(protocol, name)
        if getattr(method, "__func__", None) is not function:
            continue  # an instance attribute of the protocol's own: left as it is
        if name == "connection_made":
            callback = in_context(context, method, connection, None, AFTER_MADE, copies)
        elif name == "connection_lost":
            callback = in_context(context, method, connection, connection.lost, AFTER_CALL, copies)
        elif name in _DATA and connection.follow:
            callback = in_context(context, method, connection, connection.switched, AFTER_SWITCH, copies)
        else:
            callback = in_context(context, method, connection, None, AFTER_NOTHING, copies)
        setattr(protocol, name, callback)
        bound.append(name)
    connection.bound = tuple(bound)
    return True


def bind_protocol(protocol: Any, context: contextvars.Context, mechanism: str = "protocol") -> Any:
    """Make every callback of *protocol* run in *context*; return *protocol* (unchanged if it has no ``__dict__``)."""
    _bind(_Connection(context, protocol, mechanism))
    return protocol


# --- the loop's entry points ---


# (loop class, name) -> the function past ctxloop's classes. Two threads may
# both look one up (free-threaded CPython): they find the same function, and a
# dict's own operations are atomic. ctxloop's loop classes live as long as the
# process already (they are cached where they are made).
_next_functions: Dict[Tuple[type, str], Any] = {}


def next_function(cls: type, name: str) -> Any:
    """The function *name* of the loop class *cls* as its base loop class has it (past ctxloop's own classes)."""
    function = _next_functions.get((cls, name))
    if function is not None:
        return function
    for klass in cls.__mro__:
        if "_ctxloop_class" in klass.__dict__:
            continue
        function = klass.__dict__.get(name)
        if function is not None:
            _next_functions[(cls, name)] = function
            return function
    raise AttributeError(f"{cls.__name__} has no {name}()")  # pragma: no cover - not a loop


def next_method(loop: Any, name: str) -> Any:
    """*loop*'s method *name* as its base loop class has it: past ctxloop's classes and instance attributes."""
    cls = type(loop)
    return next_function(cls, name).__get__(loop, cls)


class _ServerFactory:
    """A server's protocol factory: each connection in its own copy of the server's context, made when accepted."""

    __slots__ = ("bind", "context", "factory")

    def __init__(self, factory: Callable[[], Any], context: contextvars.Context, bind: Callable[..., Any]) -> None:
        self.factory = factory
        self.context = context
        self.bind = bind

    def __call__(self) -> Any:
        context = self.context.copy()
        return self.bind(context.run(self.factory), context)


class _ClientFactory:
    """A client connection's protocol factory: the caller's context is copied before the factory runs, in it."""

    __slots__ = ("bind", "factory")

    def __init__(self, factory: Callable[[], Any], bind: Callable[..., Any]) -> None:
        self.factory = factory
        self.bind = bind

    def __call__(self) -> Any:
        context = contextvars.copy_context()
        return self.bind(self.factory(), context)


class ConnectionEntryPoints:
    """The connection entry points of a ctxloop loop: what ``entry_points_for()`` puts in its class.

    Each wraps the protocol factory so that the connection gets its context
    (see the module docstring) and hands it to the base loop's own method;
    ``_ctxloop_bind(kind)`` gives what the kind's mechanism does with the
    protocol and its context. A kind that needs nothing keeps the base loop's
    methods untouched.
    """

    _ctxloop_mechanisms: Mechanisms

    def _ctxloop_bind(self, kind: str) -> Callable[[Any, contextvars.Context], Any]:
        mechanism = self._ctxloop_mechanisms[kind]
        if mechanism == "transport":
            return self._ctxloop_transport_binder()  # type: ignore[attr-defined, no-any-return]
        return functools.partial(bind_protocol, mechanism=str(mechanism))

    def _ctxloop_server(self, name: str, protocol_factory: Any, args: Any, kwargs: Any) -> Any:
        factory = _ServerFactory(protocol_factory, contextvars.copy_context(), self._ctxloop_bind(STREAM))
        return next_method(self, name)(factory, *args, **kwargs)

    def _ctxloop_client(self, kind: str, name: str, protocol_factory: Any, args: Any, kwargs: Any) -> Any:
        factory = _ClientFactory(protocol_factory, self._ctxloop_bind(kind))
        return next_method(self, name)(factory, *args, **kwargs)

    async def create_server(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_server("create_server", protocol_factory, args, kwargs)

    async def create_unix_server(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_server("create_unix_server", protocol_factory, args, kwargs)

    async def create_connection(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_client(STREAM, "create_connection", protocol_factory, args, kwargs)

    async def create_unix_connection(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_client(STREAM, "create_unix_connection", protocol_factory, args, kwargs)

    async def connect_accepted_socket(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_client(STREAM, "connect_accepted_socket", protocol_factory, args, kwargs)

    async def create_datagram_endpoint(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_client(DATAGRAM, "create_datagram_endpoint", protocol_factory, args, kwargs)

    async def connect_read_pipe(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_client(PIPE, "connect_read_pipe", protocol_factory, args, kwargs)

    async def connect_write_pipe(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_client(PIPE, "connect_write_pipe", protocol_factory, args, kwargs)

    async def subprocess_exec(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_client(SUBPROCESS, "subprocess_exec", protocol_factory, args, kwargs)

    async def subprocess_shell(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._ctxloop_client(SUBPROCESS, "subprocess_shell", protocol_factory, args, kwargs)


ENTRY_POINTS = {
    STREAM: (
        "create_server",
        "create_unix_server",
        "create_connection",
        "create_unix_connection",
        "connect_accepted_socket",
    ),
    DATAGRAM: ("create_datagram_endpoint",),
    PIPE: ("connect_read_pipe", "connect_write_pipe"),
    SUBPROCESS: ("subprocess_exec", "subprocess_shell"),
}


_HELPERS = ("_ctxloop_bind", "_ctxloop_server", "_ctxloop_client")


def entry_points_for(found: Mechanisms) -> Dict[str, Any]:
    """What the class of a ctxloop loop with these mechanisms gets (name -> function or value)."""
    methods = {
        name: ConnectionEntryPoints.__dict__[name]
        for kind, names in ENTRY_POINTS.items()
        if found[kind] in ("protocol", "protocol-but-pause", "rloop", "copies", "transport")
        for name in names
    }
    if not methods:
        return {}
    helpers = {name: ConnectionEntryPoints.__dict__[name] for name in _HELPERS}
    return {**methods, **helpers, "_ctxloop_mechanisms": found}


def connection_methods(loop_class: type) -> Dict[str, Any]:
    """Everything a ctxloop loop of *loop_class* adds for connections (name -> function or value)."""
    found = mechanisms(loop_class)
    methods = entry_points_for(found)
    if any(mechanism in ("transport", "watcher") for mechanism in found.values()):
        from ._transports import transport_makers_for

        methods.update(transport_makers_for(found))
    return methods


# --- optional accelerator (ctxloop/_speedups.c; chosen once in _accel.py) ---
# A bound callback is a compiled callable that does what in_context()'s do.
from ._accel import speedups as _speedups  # noqa: E402 - after what it replaces

_pure_in_context = in_context
if _speedups is not None:
    in_context = _speedups.InContext  # type: ignore[assignment, misc]
