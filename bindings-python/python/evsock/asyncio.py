"""asyncio hosts over the evsock engine.

Two levels, both pure Python over the Rust core, with every timer
(handshake, keep-alive ping/pong, idle, close, acks, request timeouts,
reconnect backoff) run by the engine:

**Event vectors** (the evsock session protocol: reliable delivery,
request/reply, resume after reconnect)::

    import asyncio
    from evsock.asyncio import serve

    peers = set()

    async def chat(peer):
        peers.add(peer)
        peer.on("chat/send", lambda text: [p.send("chat/message", text) for p in peers])
        await peer.wait_closed()
        peers.discard(peer)

    asyncio.run(serve(chat, "127.0.0.1", 8080).serve_forever())

and on the other side ``client = await connect("ws://127.0.0.1:8080")``,
``client.send("chat/send", "hi")``, ``await client.request("user/get", {...},
timeout=5)``, ``client.on("chat/message", print)``.

**Plain WebSocket** messages: :func:`serve_websocket` and
:func:`connect_websocket` hand you a :class:`WebSocket` with ``send()``,
``recv()``, ``async for``, ``ping()`` and ``close()``.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import ssl as _ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, Literal, TypeVar, cast

from . import _evsock as _ev
from . import session as _ses

__all__ = [
    "Client",
    "Peer",
    "Server",
    "WebSocket",
    "connect",
    "connect_websocket",
    "serve",
    "serve_websocket",
]

log = logging.getLogger("evsock")

_WS_KEYS = frozenset(_ev.websocket_settings())
_SESSION_KEYS = frozenset(_ev.session_settings())

#: Bytes the transport may buffer for a peer that does not read before the
#: connection is dropped (a session resumes it later). Keeps a slow consumer
#: from growing memory without bound when sends do not await.
MAX_WRITE_BUFFER = 16 << 20


def _closed_error(code: int | None, reason: str, message: str | None = None) -> Exception:
    if message is None:
        message = f"connection closed (code {code}{', ' + repr(reason) if reason else ''})"
    e = _ev.ConnectionClosed(message)
    e.code = code
    e.reason = reason
    return e


def _delay(deadline_ms: int) -> float:
    return max(0, deadline_ms - _ev.now_ms()) / 1000.0


# ------------------------------------------------------------ transport ---


class _Protocol(asyncio.Protocol):
    """Drives one evsock WebSocket connection over an asyncio transport and
    reports to a sink: ``ws_request(proto, request)`` (server),
    ``ws_open(proto)``, ``ws_message(proto, data)``, ``ws_pong(proto,
    payload)`` and ``ws_closed(proto, closed)``."""

    def __init__(self, conn: _ev.Connection, sink: Any, loop: asyncio.AbstractEventLoop):
        self.conn = conn
        self.sink = sink
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed_event: _ev.Closed | None = None
        self.lost = loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._write_paused = False
        self._drain_waiters: collections.deque[asyncio.Future] = collections.deque()
        self._driving = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.drive()

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self.drive()

    def eof_received(self) -> bool:
        self.conn.receive_eof()
        self.drive()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.conn.closed:
            self.conn.receive_eof()
        self.transport = None
        self.drive()
        self._cancel_timer()
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        while self._drain_waiters:
            w = self._drain_waiters.popleft()
            if not w.done():
                w.set_result(None)

    # driving the engine

    def drive(self) -> None:
        """Handles pending events, writes pending bytes, re-arms the timer."""
        if self._driving:
            # A sink callback sent something; the outer loop flushes it.
            return
        self._driving = True
        try:
            conn = self.conn
            sink = self.sink
            ev: Any  # dispatched on its exact type below (faster than isinstance)
            for ev in conn.events():
                t = type(ev)
                if t is _ev.TextMessage or t is _ev.BinaryMessage:
                    sink.ws_message(self, ev.data)
                elif t is _ev.Pong:
                    sink.ws_pong(self, ev.payload)
                elif t is _ev.Request:
                    sink.ws_request(self, ev)
                elif t is _ev.Open:
                    sink.ws_open(self)
                elif t is _ev.Closed:
                    self.closed_event = ev
                    sink.ws_closed(self, ev)
            self.flush()
        finally:
            self._driving = False
        if conn.closed:
            tr = self.transport
            if tr is not None and not tr.is_closing():
                tr.close()
            self._cancel_timer()
        else:
            self._arm_timer()

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if not out:
            return
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        tr.write(out)
        if self._write_paused and tr.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("evsock: peer is not reading; dropping the connection")
            tr.abort()

    async def drain(self) -> None:
        if self._write_paused and self.transport is not None:
            w = self.loop.create_future()
            self._drain_waiters.append(w)
            await w

    def _arm_timer(self) -> None:
        at = self.conn.poll_timeout()
        if at == self._timer_at:
            return
        self._cancel_timer()
        if at is not None:
            self._timer_at = at
            self._timer = self.loop.call_later(_delay(at), self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.conn.handle_timeout()
        self.drive()

    @property
    def remote_address(self) -> Any:
        return self.transport.get_extra_info("peername") if self.transport else None


def _split_url(url: str) -> tuple[str, int, bool]:
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("ws", "wss"):
        raise _ev.InvalidArgumentError(f"invalid URL {url!r}: the scheme must be ws:// or wss://")
    if not u.hostname:
        raise _ev.InvalidArgumentError(f"invalid URL {url!r}: no host")
    secure = u.scheme == "wss"
    try:
        port = u.port or (443 if secure else 80)
    except ValueError as e:
        raise _ev.InvalidArgumentError(f"invalid URL {url!r}: {e}") from None
    return u.hostname, port, secure


class _Listener:
    """Owns a listening socket and the connections it accepted."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.protocols: set[_Protocol] = set()
        self.closing = False

    def track(self, proto: _Protocol) -> None:
        self.protocols.add(proto)
        proto.lost.add_done_callback(lambda _: self.protocols.discard(proto))


T = TypeVar("T")


class _Opener(Generic[T]):
    """``await x`` or ``async with x as y`` for serve/connect results."""

    def __init__(self, make: Callable[[], Awaitable[T]]):
        self._make = make
        self._value: T | None = None

    def __await__(self):
        return self._make().__await__()

    async def __aenter__(self) -> T:
        self._value = await self._make()
        return self._value

    async def __aexit__(self, *exc: object) -> None:
        v = self._value
        if v is not None:
            close = v.close()  # type: ignore[attr-defined]
            if inspect.isawaitable(close):
                await close
            wc = getattr(v, "wait_closed", None)
            if wc is not None:
                await wc()

    def serve_forever(self) -> Awaitable[None]:
        """``asyncio.run(serve(...).serve_forever())``."""

        async def run() -> None:
            server = await self._make()
            await server.serve_forever()  # type: ignore[attr-defined]

        return run()


class Server:
    """A listening evsock server (from :func:`serve` or
    :func:`serve_websocket`)."""

    def __init__(self, listener: _Listener, on_close: Callable[[int, str], None]):
        self._listener = listener
        self._on_close = on_close
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        s = self._listener.server
        return tuple(s.sockets) if s is not None else ()

    @property
    def port(self) -> int:
        """The port of the first listening socket (handy with ``port=0``)."""
        return self.sockets[0].getsockname()[1]

    def close(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Stops listening and closes every connection with ``code``."""
        if self._listener.closing:
            return
        self._listener.closing = True
        if self._listener.server is not None:
            self._listener.server.close()
        self._on_close(code, reason)

    async def wait_closed(self) -> None:
        """Waits until every connection has ended."""
        if self._listener.server is not None:
            await self._listener.server.wait_closed()
        protos = list(self._listener.protocols)
        if protos:
            await asyncio.gather(*(p.lost for p in protos), return_exceptions=True)

    async def serve_forever(self) -> None:
        """Serves until cancelled, then closes every connection."""
        try:
            await asyncio.Future()
        finally:
            self.close()
            await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _decide(proto: _Protocol, request: _ev.Request, process_request: Callable | None) -> None:
    """Accepts, rejects, or lets ``process_request`` decide (sync or async).

    ``process_request(request)`` returns ``None`` to accept, a
    :class:`~evsock.RejectConnection` or an ``(status, body)`` tuple to
    reject, or an :class:`~evsock.AcceptConnection`."""
    conn = cast(_ev.ServerConnection, proto.conn)

    def apply(result: Any) -> None:
        if conn.state != "handshake":
            return
        if result is None:
            conn.accept()
        elif isinstance(result, (_ev.AcceptConnection, _ev.RejectConnection)):
            conn.send(result)
        elif isinstance(result, tuple):
            conn.reject(*result)
        else:
            raise TypeError(
                "process_request must return None, AcceptConnection, RejectConnection "
                f"or a (status, body) tuple, not {type(result).__name__}"
            )

    def fail(e: BaseException) -> None:
        log.error("evsock: process_request failed", exc_info=e)
        if conn.state == "handshake":
            conn.reject(500, "internal error")

    if process_request is None:
        conn.accept()
        return
    try:
        result = process_request(request)
    except Exception as e:  # noqa: BLE001 - reported and answered with 500
        fail(e)
        return
    if inspect.isawaitable(result):

        async def wait() -> None:
            try:
                apply(await result)
            except Exception as e:  # noqa: BLE001
                fail(e)
            proto.drive()

        asyncio.ensure_future(wait())
        return
    try:
        apply(result)
    except Exception as e:  # noqa: BLE001
        fail(e)


def _split_config(config: dict[str, Any], session: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    ws: dict[str, Any] = {}
    ses: dict[str, Any] = {}
    for k, v in config.items():
        if session and k in _SESSION_KEYS:
            ses[k] = v
        elif k in _WS_KEYS:
            ws[k] = v
        else:
            known = sorted(_WS_KEYS | (_SESSION_KEYS if session else frozenset()))
            raise TypeError(f"unexpected keyword argument {k!r}; settings are: {', '.join(known)}")
    return ws, ses


# ------------------------------------------------------------ WebSocket ---


class WebSocket:
    """One open WebSocket connection, either role.

    ``await send(msg)`` (``str`` is text, bytes binary), ``await recv()``,
    ``async for msg in ws``, ``await ping()``, ``await close()``. Incoming
    messages queue up to ``max_queue``; beyond it the connection stops
    reading until you catch up."""

    def __init__(self, max_queue: int = 64):
        self._proto: _Protocol | None = None
        self._queue: collections.deque[str | bytes] = collections.deque()
        self._waiter: asyncio.Future | None = None
        self._max_queue = max(1, max_queue)
        self._paused = False
        self._pings: dict[bytes, asyncio.Future] = {}
        self._closed_fut: asyncio.Future | None = None
        self._open_fut: asyncio.Future | None = None
        #: Server role: the client's upgrade request.
        self.request: _ev.Request | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""

    # sink interface (called by _Protocol)

    def ws_request(self, proto: _Protocol, request: _ev.Request) -> None:  # pragma: no cover - server wires its own
        cast(_ev.ServerConnection, proto.conn).accept()

    def ws_open(self, proto: _Protocol) -> None:
        if self._open_fut is not None and not self._open_fut.done():
            self._open_fut.set_result(None)

    def ws_message(self, proto: _Protocol, data: str | bytes) -> None:
        self._queue.append(data)
        if len(self._queue) >= self._max_queue and not self._paused and proto.transport is not None:
            self._paused = True
            proto.transport.pause_reading()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def ws_pong(self, proto: _Protocol, payload: bytes) -> None:
        w = self._pings.pop(payload, None)
        if w is not None and not w.done():
            w.set_result(None)

    def ws_closed(self, proto: _Protocol, closed: _ev.Closed) -> None:
        self.close_code = closed.code
        self.close_reason = closed.reason
        err = _closed_error(closed.code, closed.reason, self._describe(closed))
        if self._open_fut is not None and not self._open_fut.done():
            self._open_fut.set_exception(err)
        for pw in self._pings.values():
            if not pw.done():
                pw.set_exception(_closed_error(closed.code, closed.reason))
        self._pings.clear()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
        if self._closed_fut is not None and not self._closed_fut.done():
            self._closed_fut.set_result(None)

    @staticmethod
    def _describe(closed: _ev.Closed) -> str:
        if closed.error_message:
            return f"connection closed: {closed.error_message}"
        return f"connection closed (code {closed.code}{', ' + repr(closed.reason) if closed.reason else ''})"

    def _attach(self, proto: _Protocol) -> None:
        self._proto = proto
        self._closed_fut = proto.loop.create_future()
        self._open_fut = proto.loop.create_future()

    # public API

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the handshake selected, or ``None``."""
        return self._proto.conn.subprotocol if self._proto else None

    @property
    def path(self) -> str | None:
        """Server role: the request path."""
        return self.request.path if self.request is not None else None

    @property
    def remote_address(self) -> Any:
        """The peer's address (``(host, port)`` for TCP)."""
        return self._proto.remote_address if self._proto else None

    @property
    def state(self) -> str:
        """``"handshake"``, ``"open"``, ``"closing"`` or ``"closed"``."""
        return self._proto.conn.state if self._proto else "handshake"

    @property
    def closed(self) -> bool:
        """The connection is over."""
        return self._proto is None or self._proto.conn.closed

    def _check_open(self) -> _Protocol:
        p = self._proto
        if p is None or p.conn.state != "open":
            raise _closed_error(self.close_code, self.close_reason)
        return p

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Sends one message: ``str`` as text, bytes-like as binary. Waits
        while the transport's write buffer is full."""
        p = self._check_open()
        if isinstance(message, str):
            p.conn.send_text(message)
        else:
            p.conn.send_binary(message)
        p.flush()
        await p.drain()

    async def send_many(self, messages: Iterable[str | bytes]) -> None:
        """Sends many messages in one engine call and one write."""
        p = self._check_open()
        p.conn.send_messages(messages)
        p.flush()
        await p.drain()

    async def recv(self) -> str | bytes:
        """The next message. Raises :class:`~evsock.ConnectionClosed` once
        the connection has ended and every message was read."""
        while True:
            if self._queue:
                msg = self._queue.popleft()
                if self._paused and len(self._queue) <= self._max_queue // 2:
                    self._paused = False
                    p = self._proto
                    if p is not None and p.transport is not None:
                        p.transport.resume_reading()
                return msg
            if self.closed and (self._proto is None or self._proto.closed_event is not None):
                raise _closed_error(self.close_code, self.close_reason)
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except _ev.ConnectionClosed:
            raise StopAsyncIteration from None

    async def ping(self, payload: bytes | None = None) -> None:
        """Sends a ping and waits for its pong."""
        p = self._check_open()
        if payload is None:
            payload = os.urandom(4)
        w = p.loop.create_future()
        self._pings[bytes(payload)] = w
        p.conn.ping(payload)
        p.flush()
        await w

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the closing handshake and waits for the connection to end
        (bounded by the engine's close timeout)."""
        p = self._proto
        if p is None:
            return
        if p.conn.state == "open":
            p.conn.close(code, reason)
            p.drive()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Waits until the connection has ended."""
        p = self._proto
        if p is None:
            return
        if self._closed_fut is not None:
            await self._closed_fut
        await p.lost

    def __repr__(self) -> str:
        return f"<evsock.asyncio.WebSocket state={self.state}>"


class _ServerWebSocket(WebSocket):
    def __init__(self, handler: Callable[[WebSocket], Awaitable[Any]], process_request: Callable | None, max_queue: int):
        super().__init__(max_queue)
        self._handler = handler
        self._process_request = process_request
        self._task: asyncio.Task | None = None

    def ws_request(self, proto: _Protocol, request: _ev.Request) -> None:
        self.request = request
        _decide(proto, request, self._process_request)

    def ws_open(self, proto: _Protocol) -> None:
        super().ws_open(proto)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._handler(self)
        except _ev.ConnectionClosed:
            pass
        except Exception:
            log.exception("evsock: connection handler failed")
            if self.state == "open":
                await self.close(1011, "internal error")
            return
        if self.state == "open":
            await self.close(1000, "")


def serve_websocket(
    handler: Callable[[WebSocket], Awaitable[Any]],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    ssl: _ssl.SSLContext | None = None,
    process_request: Callable[[_ev.Request], Any] | None = None,
    max_queue: int = 64,
    **config: Any,
) -> _Opener[Server]:
    """Serves plain WebSocket connections: ``handler(ws)`` runs for each
    one, and the connection closes (1000) when it returns. Keyword settings
    are the :class:`~evsock.ServerConnection` ones (limits, timers,
    ``subprotocols``, ``origins``, ``deflate``...). ``await`` the result, or
    use it with ``async with``."""
    ws_cfg, _ = _split_config(config, session=False)

    async def make() -> Server:
        loop = asyncio.get_running_loop()
        listener = _Listener()

        def factory() -> _Protocol:
            sock = _ServerWebSocket(handler, process_request, max_queue)
            proto = _Protocol(_ev.ServerConnection(**ws_cfg), sock, loop)
            sock._attach(proto)
            listener.track(proto)
            return proto

        listener.server = await loop.create_server(factory, host, port, ssl=ssl)

        def close_all(code: int, reason: str) -> None:
            for p in list(listener.protocols):
                if p.conn.state == "open":
                    p.conn.close(code, reason)
                    p.drive()
                elif p.transport is not None and p.conn.state == "handshake":
                    p.transport.close()

        return Server(listener, close_all)

    return _Opener(make)


def connect_websocket(
    url: str,
    *,
    ssl: _ssl.SSLContext | bool | None = None,
    subprotocols: Iterable[str] | None = None,
    origin: str | None = None,
    headers: Any = None,
    max_queue: int = 64,
    **config: Any,
) -> _Opener[WebSocket]:
    """Opens a plain WebSocket connection to ``ws://`` or ``wss://`` ``url``.
    Raises :class:`~evsock.ConnectionClosed` if the handshake fails (the
    message says why). ``await`` the result, or use ``async with``."""
    ws_cfg, _ = _split_config(config, session=False)

    async def make_attached() -> WebSocket:
        ws = WebSocket(max_queue)
        loop = asyncio.get_running_loop()
        host, port, secure = _split_url(url)
        conn = _ev.ClientConnection(url, subprotocols=subprotocols, origin=origin, headers=headers, **ws_cfg)
        proto = _Protocol(conn, ws, loop)
        ws._attach(proto)
        ctx = _client_ssl(ssl, secure)
        await loop.create_connection(lambda: proto, host, port, ssl=ctx, server_hostname=host if ctx else None)
        await ws._open_fut  # type: ignore[misc]
        return ws

    return _Opener(make_attached)


def _client_ssl(ssl: _ssl.SSLContext | bool | None, secure: bool) -> _ssl.SSLContext | None:
    if isinstance(ssl, _ssl.SSLContext):
        return ssl
    if ssl is True or (ssl is None and secure):
        return _ssl.create_default_context()
    return None


# ---------------------------------------------------------- event vectors ---


Handler = Callable[..., Any]


class _SessionEndpoint:
    """The event-vector API shared by :class:`Peer` (server side) and
    :class:`Client`: ``send``, ``request``, ``on``, ``close``."""

    def __init__(self, session: _ses.Session, loop: asyncio.AbstractEventLoop):
        self._session = session
        self._loop = loop
        self._handlers: dict[str, Handler] = {}
        self._any: Handler | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._proto: _Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._closed = loop.create_future()
        self._connected = asyncio.Event()
        self._driving = False
        self._again = False

    # public API

    @property
    def session_id(self) -> str | None:
        """The session id (a client learns it from its first welcome)."""
        return self._session.session_id

    @property
    def connected(self) -> bool:
        """A transport is open and the session handshake is done."""
        return self._session.established

    @property
    def closed(self) -> bool:
        """The session has ended for good."""
        return self._closed.done()

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Registers ``handler(data)`` for ``event`` (or use as a decorator).

        For a request the handler's return value (or awaited result) is the
        reply; an exception becomes an error reply ``{"error": message}``.
        ``on("*", handler)`` receives ``handler(event, data)`` for events
        without their own handler."""

        def register(h: Handler) -> Handler:
            if event == "*":
                self._any = h
            else:
                self._handlers[event] = h
            return h

        return register if handler is None else register(handler)

    def send(self, event: str, data: Any = None, *, reliable: bool = True) -> int | None:
        """Sends an event. Reliable (the default): numbered, acknowledged,
        resent after a reconnect, accepted while disconnected; returns its id.
        ``reliable=False``: fire-and-forget, only while connected."""
        if reliable:
            r = self._session.send_reliable(event, data)
        else:
            self._session.send(event, data)
            r = None
        self._drive()
        return r

    async def request(
        self, event: str, data: Any = None, *, timeout: float = 10.0, idempotency_key: str | None = None
    ) -> Any:
        """Sends a request and returns the reply's data. Raises
        :class:`~evsock.RequestTimeout` after ``timeout`` seconds, or
        :class:`~evsock.RequestError` (``kind`` ``"remote"`` with the peer's
        error ``data``, ``"session_closed"``, ``"resume_failed"``)."""
        timeout_ms = max(1, int(timeout * 1000))
        req = self._session.request(event, data, timeout_ms=timeout_ms, idempotency_key=idempotency_key)
        fut = self._loop.create_future()
        self._pending[req] = fut
        self._drive()
        try:
            return await fut
        finally:
            self._pending.pop(req, None)

    def close(self) -> None:
        """Ends the session for good (the peer is told when connected)."""
        if not self._session.closed:
            self._session.close()
            self._drive()

    async def wait_closed(self) -> None:
        """Waits until the session has ended (closed by either side, or
        expired on a server)."""
        await asyncio.shield(self._closed)

    async def wait_connected(self) -> None:
        """Waits until a transport is open and the session handshake done."""
        await self._connected.wait()

    # transport glue (WebSocket sink interface)

    def ws_open(self, proto: _Protocol) -> None:
        self._proto = proto
        self._session.handle_connected()
        self._drive()

    def ws_message(self, proto: _Protocol, data: str | bytes) -> None:
        if proto is not self._proto:
            return
        self._session.handle_message(data)
        self._drive()

    def ws_pong(self, proto: _Protocol, payload: bytes) -> None:
        pass

    def ws_closed(self, proto: _Protocol, closed: _ev.Closed) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        self._connected.clear()
        if not self._session.closed:
            self._session.handle_disconnected()
        self._drive()

    # driving the session

    def _drive(self) -> None:
        if self._driving:
            # Called back from inside the loop below (a message arrived while
            # the transport was being driven): go round once more.
            self._again = True
            return
        self._driving = True
        try:
            s = self._session
            while True:
                self._again = False
                while True:
                    out = s.next_output()
                    if out is None:
                        break
                    self._output(out)
                p = self._proto
                if p is not None:
                    p.drive()
                if not self._again:
                    break
        finally:
            self._driving = False
        self._arm_timer()

    def _output(self, out: Any) -> None:
        t = type(out)
        if t is _ses.Send:
            p = self._proto
            if p is not None and p.conn.state == "open":
                msg = out.message
                if isinstance(msg, str):
                    p.conn.send_text(msg)
                else:
                    p.conn.send_binary(msg)
        elif t is _ses.Message:
            self._dispatch(out.event, out, None)
        elif t is _ses.Request:
            self._dispatch(out.event, out, out.req)
        elif t is _ses.Reply:
            self._resolve(out.req, out, None)
        elif t is _ses.RequestFailed:
            self._resolve(out.req, None, out)
        elif t is _ses.Established:
            self._connected.set()
            self._established(out)
        elif t is _ses.CloseTransport:
            p = self._proto
            self._proto = None
            if p is not None and p.conn.state == "open":
                code = 1000 if out.reason in ("session_closed", "go_away") else 1001
                p.conn.close(code, out.reason)
                p.drive()
        elif t is _ses.Reconnect:
            self._reconnect()
        elif t is _ses.Closed or t is _ses.Expired:
            self._connected.clear()
            self._end()
        elif t is _ses.Error:
            log.debug("evsock: session ignored bad input: %s (%s)", out.message, out.code)
        elif t is _ses.Gap:
            log.warning("evsock: reliable messages %d..%d from the peer were lost", out.first, out.last)
        elif t is _ses.Reset:
            log.info("evsock: the server could not resume the session; a fresh one started")

    def _established(self, out: Any) -> None:
        pass

    def _reconnect(self) -> None:
        pass

    def _end(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                e = _ev.RequestError("the session closed before the reply arrived")
                e.kind = "session_closed"
                e.data = None
                fut.set_exception(e)
        if not self._closed.done():
            self._closed.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _resolve(self, req: int, reply: Any, failed: Any) -> None:
        fut = self._pending.get(req)
        if fut is None or fut.done():
            return
        if failed is None:
            try:
                fut.set_result(reply.data)
            except Exception as e:  # undecodable data
                fut.set_exception(e)
            return
        kind = failed.error
        err: _ev.RequestError
        if kind == "timeout":
            err = _ev.RequestTimeout(f"no reply to request {req} in time")
        elif kind == "remote":
            err = _ev.RequestError(f"the peer answered request {req} with an error: {failed.raw}")
        elif kind == "session_closed":
            err = _ev.RequestError(f"the session closed before request {req} was answered")
        else:
            err = _ev.RequestError(f"request {req} failed: {kind}")
        err.kind = kind
        try:
            err.data = failed.data
        except Exception:  # noqa: BLE001 - undecodable error data
            err.data = failed.raw
        fut.set_exception(err)

    def _dispatch(self, event: str, ev: Any, req: int | None) -> None:
        h = self._handlers.get(event)
        try:
            data = ev.data
        except Exception as e:  # noqa: BLE001 - undecodable data from the peer
            log.warning("evsock: could not decode data of %s: %s", event, e)
            if req is not None:
                self._reply(req, None, {"error": "undecodable data"})
            return
        if h is None and self._any is not None:
            self._call(lambda: self._any(event, data), req, event)  # type: ignore[misc]
        elif h is not None:
            self._call(lambda: h(data), req, event)
        elif req is not None:
            self._reply(req, None, {"error": f"no handler for {event}"})

    def _call(self, fn: Callable[[], Any], req: int | None, event: str) -> None:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - becomes an error reply
            if req is None:
                log.exception("evsock: handler for %s failed", event)
            else:
                self._reply(req, None, {"error": str(e) or type(e).__name__})
            return
        if inspect.isawaitable(result):

            async def finish() -> None:
                try:
                    value = await result
                except Exception as e:  # noqa: BLE001
                    if req is None:
                        log.exception("evsock: handler for %s failed", event)
                    else:
                        self._reply(req, None, {"error": str(e) or type(e).__name__})
                    return
                if req is not None:
                    self._reply(req, value, None)

            asyncio.ensure_future(finish())
        elif req is not None:
            self._reply(req, result, None)

    def _reply(self, req: int, value: Any, error: Any) -> None:
        try:
            if error is None:
                self._session.reply(req, value)
            else:
                self._session.reply_error(req, error)
        except _ev.SessionError as e:
            if e.kind == "invalid_data":
                log.error("evsock: reply to request %d is not encodable: %s", req, e)
                self._session.reply_error(req, {"error": "reply not encodable"})
            else:
                log.debug("evsock: could not reply to request %d: %s", req, e)
        except (TypeError, ValueError) as e:
            log.error("evsock: reply to request %d is not encodable: %s", req, e)
            try:
                self._session.reply_error(req, {"error": "reply not encodable"})
            except _ev.SessionError:
                pass
        self._drive()

    def _arm_timer(self) -> None:
        at = self._session.poll_timeout()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self._loop.call_later(_delay(at), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._session.handle_timeout()
        self._drive()


class Peer(_SessionEndpoint):
    """The server's side of one client session. It outlives connections: a
    client that reconnects within the resume window gets the same Peer,
    with nothing lost."""

    def __repr__(self) -> str:
        return f"<evsock.asyncio.Peer session_id={self.session_id!r} connected={self.connected}>"


class Client(_SessionEndpoint):
    """A client session: reconnects by itself (with the engine's backoff)
    and resumes, so reliable sends and requests survive dropped
    connections."""

    def __init__(self, session: _ses.Session, loop: asyncio.AbstractEventLoop, opener: Callable[[], Awaitable[None]]):
        super().__init__(session, loop)
        self._opener = opener
        self._first = loop.create_future()

    def _established(self, out: Any) -> None:
        if not self._first.done():
            self._first.set_result(None)

    def _reconnect(self) -> None:
        asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        try:
            await self._opener()
        except (OSError, _ev.EvsockError) as e:
            log.info("evsock: reconnect failed: %s", e)
            if not self._session.closed:
                self._session.handle_disconnected()
                self._drive()

    def ws_closed(self, proto: _Protocol, closed: _ev.Closed) -> None:
        if not self._first.done() and proto is self._proto:
            self._first.set_exception(_closed_error(closed.code, closed.reason, WebSocket._describe(closed)))
        super().ws_closed(proto, closed)

    def __repr__(self) -> str:
        return f"<evsock.asyncio.Client session_id={self.session_id!r} connected={self.connected}>"


class _ServerSink:
    """The sink of one server connection before its session is known."""

    def __init__(self, host: _SessionServer, process_request: Callable | None):
        self.host = host
        self.process_request = process_request
        self.endpoint: Peer | None = None

    def ws_request(self, proto: _Protocol, request: _ev.Request) -> None:
        _decide(proto, request, self.process_request)

    def ws_open(self, proto: _Protocol) -> None:
        pass

    def ws_pong(self, proto: _Protocol, payload: bytes) -> None:
        pass

    def ws_message(self, proto: _Protocol, data: str | bytes) -> None:
        if self.endpoint is None:
            self.endpoint = self.host.route(proto, data)
            if self.endpoint is None:
                return
            self.endpoint.ws_open(proto)
        self.endpoint.ws_message(proto, data)

    def ws_closed(self, proto: _Protocol, closed: _ev.Closed) -> None:
        if self.endpoint is not None:
            self.endpoint.ws_closed(proto, closed)


class _SessionServer:
    def __init__(self, handler: Callable[[Peer], Awaitable[Any]], session_cfg: dict[str, Any], loop: asyncio.AbstractEventLoop):
        self.handler = handler
        self.session_cfg = session_cfg
        self.loop = loop
        self.peers: dict[str, Peer] = {}

    def route(self, proto: _Protocol, first: str | bytes) -> Peer | None:
        try:
            hello = _ses.peek_hello(first)
        except _ev.SessionError as e:
            log.debug("evsock: first message is not a session hello: %s", e)
            proto.conn.close(1002, "expected evs/hello")
            return None
        peer = self.peers.get(hello.session_id) if hello.session_id else None
        if peer is not None and not peer.closed:
            old = peer._proto
            if old is not None and old is not proto and old.conn.state == "open":
                peer._proto = None
                old.conn.close(1000, "replaced by a new connection")
                old.drive()
            return peer
        sid = _ses.new_session_id()
        while sid in self.peers:
            sid = _ses.new_session_id()
        session = _ses.Session.server(sid, **self.session_cfg)
        peer = _HostedPeer(session, self.loop, self)
        self.peers[sid] = peer
        return peer

    def forget(self, peer: Peer) -> None:
        sid = peer.session_id
        if sid is not None and self.peers.get(sid) is peer:
            del self.peers[sid]


class _HostedPeer(Peer):
    def __init__(self, session: _ses.Session, loop: asyncio.AbstractEventLoop, host: _SessionServer):
        super().__init__(session, loop)
        self._host = host
        self._task: asyncio.Task | None = None

    def _established(self, out: Any) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._host.handler(self)
        except Exception:
            log.exception("evsock: session handler failed")
            self.close()

    def _end(self) -> None:
        super()._end()
        self._host.forget(self)


def serve(
    handler: Callable[[Peer], Awaitable[Any]],
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    ssl: _ssl.SSLContext | None = None,
    process_request: Callable[[_ev.Request], Any] | None = None,
    websocket: dict[str, Any] | None = None,
    **config: Any,
) -> _Opener[Server]:
    """Serves evsock sessions (event vectors) over WebSocket.
    ``handler(peer)`` runs once per session, when it starts; a client that
    reconnects and resumes keeps its :class:`Peer`. Keyword settings are
    session settings (``resume_window_ms``, ``ack_delay_ms``,
    ``ping_interval_ms``, ``idle_timeout_ms``, ...); WebSocket settings go in
    ``websocket={...}`` (WebSocket keep-alive is off by default because the
    session pings). ``await`` the result, or use ``async with``."""
    ws_cfg = {"ping_interval_ms": None, "pong_timeout_ms": None, **(websocket or {})}
    _split_config(ws_cfg, session=False)
    session_cfg: dict[str, Any] = {}
    for k, v in config.items():
        if k not in _SESSION_KEYS:
            raise TypeError(
                f"unexpected keyword argument {k!r}; session settings are: {', '.join(sorted(_SESSION_KEYS))}"
                " (pass WebSocket settings as websocket={...})"
            )
        session_cfg[k] = v
    # Fail on bad settings now, not on the first connection.
    _ses.Session.server("probe", **session_cfg)
    _ev.ServerConnection(**ws_cfg)

    async def make() -> Server:
        loop = asyncio.get_running_loop()
        listener = _Listener()
        hub = _SessionServer(handler, session_cfg, loop)

        def factory() -> _Protocol:
            sink = _ServerSink(hub, process_request)
            proto = _Protocol(_ev.ServerConnection(**ws_cfg), sink, loop)
            listener.track(proto)
            return proto

        listener.server = await loop.create_server(factory, host, port, ssl=ssl)

        def close_all(code: int, reason: str) -> None:
            for peer in list(hub.peers.values()):
                peer.close()
            for p in list(listener.protocols):
                if p.conn.state == "open":
                    p.conn.close(code, reason)
                    p.drive()
                elif p.transport is not None:
                    p.transport.close()

        return Server(listener, close_all)

    return _Opener(make)


def connect(
    url: str,
    *,
    format: Literal["json", "msgpack"] = "json",
    ssl: _ssl.SSLContext | bool | None = None,
    subprotocols: Iterable[str] | None = None,
    origin: str | None = None,
    headers: Any = None,
    websocket: dict[str, Any] | None = None,
    **config: Any,
) -> _Opener[Client]:
    """Opens an evsock session (event vectors) to ``url`` and returns once it
    is established; raises if the first connection fails. Later drops are
    repaired by reconnecting with backoff and resuming. ``format`` is
    ``"json"`` or ``"msgpack"``; keyword settings are session settings;
    WebSocket settings go in ``websocket={...}``."""
    ws_cfg = {"ping_interval_ms": None, "pong_timeout_ms": None, **(websocket or {})}
    _split_config(ws_cfg, session=False)
    for k in config:
        if k not in _SESSION_KEYS:
            raise TypeError(
                f"unexpected keyword argument {k!r}; session settings are: {', '.join(sorted(_SESSION_KEYS))}"
                " (pass WebSocket settings as websocket={...})"
            )
    host, port, secure = _split_url(url)
    ctx = _client_ssl(ssl, secure)

    async def make() -> Client:
        loop = asyncio.get_running_loop()
        session = _ses.Session.client(format=format, **config)
        client: Client

        async def open_transport() -> None:
            conn = _ev.ClientConnection(url, subprotocols=subprotocols, origin=origin, headers=headers, **ws_cfg)
            proto = _Protocol(conn, client, loop)
            await loop.create_connection(lambda: proto, host, port, ssl=ctx, server_hostname=host if ctx else None)

        client = Client(session, loop, open_transport)
        await open_transport()
        try:
            await client._first
        except BaseException:
            client.close()
            raise
        return client

    return _Opener(make)
