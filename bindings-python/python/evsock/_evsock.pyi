"""Type stubs for the compiled core of evsock."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Literal, final

from typing_extensions import Self, TypeAlias, disjoint_base

__version__: str

__all__ = [
    "EvsockError",
    "InvalidStateError",
    "InvalidArgumentError",
    "OutboundFullError",
    "SessionError",
    "RequestError",
    "RequestTimeout",
    "ConnectionClosed",
    "Request",
    "Open",
    "TextMessage",
    "BinaryMessage",
    "Ping",
    "Pong",
    "Closed",
    "Close",
    "AcceptConnection",
    "RejectConnection",
    "Connection",
    "ServerConnection",
    "ClientConnection",
    "EventIter",
    "Session",
    "SessionSend",
    "SessionEstablished",
    "SessionReset",
    "SessionGap",
    "SessionMessage",
    "SessionRequest",
    "SessionReply",
    "SessionRequestFailed",
    "SessionReconnect",
    "SessionCloseTransport",
    "SessionExpired",
    "SessionClosed",
    "SessionErrorEvent",
    "SessionHello",
    "SessionOutputIter",
    "new_session_id",
    "peek_hello",
    "encode_go_away",
    "encode",
    "decode",
    "session_settings",
    "websocket_settings",
    "now_ms",
    "__version__",
]

# Annotation-only aliases (they do not exist at run time).
_Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
_BytesLike: TypeAlias = bytes | bytearray | memoryview
_Millis: TypeAlias = int | float
_State: TypeAlias = Literal["handshake", "open", "closing", "closed"]
_Format: TypeAlias = Literal["json", "msgpack"]
_Wire: TypeAlias = str | bytes

def now_ms() -> int:
    """Milliseconds of ``time.monotonic()``: the clock every ``now`` argument
    defaults to."""

# ----------------------------------------------------------------- errors ---

class EvsockError(Exception):
    """Base class of every error evsock raises."""

    kind: str
    """A stable snake_case name shared with the engine and other bindings."""

class InvalidStateError(EvsockError):
    """The call is not valid in the connection's current state."""

class InvalidArgumentError(EvsockError, ValueError):
    """An argument was rejected."""

class OutboundFullError(EvsockError, BufferError):
    """Sending would queue more than ``max_outbound_bytes``."""

class SessionError(EvsockError):
    """A session call was refused; ``kind`` says why."""

class RequestError(EvsockError):
    """A request ended without a reply: ``kind`` is ``timeout``,
    ``session_closed``, ``resume_failed`` or ``remote`` (then ``data`` holds
    the peer's error data)."""

    data: Any

class RequestTimeout(RequestError, TimeoutError):
    """No reply within the request's timeout."""

class ConnectionClosed(EvsockError):
    """The connection or session is closed."""

    code: int | None
    reason: str

# ----------------------------------------------------------------- events ---

@final
class Request:
    """Server: a client asks to upgrade; call ``accept()`` or ``reject()``."""

    __match_args__: ClassVar[tuple[str, ...]] = (
        "path",
        "headers",
        "origin",
        "subprotocols",
        "extensions",
        "selected_subprotocol",
    )
    @property
    def path(self) -> str: ...
    @property
    def headers(self) -> list[tuple[str, str]]:
        """Header fields as sent; values decoded as Latin-1 (lossless)."""
    @property
    def origin(self) -> str | None: ...
    @property
    def subprotocols(self) -> list[str]: ...
    @property
    def extensions(self) -> list[str]: ...
    @property
    def selected_subprotocol(self) -> str | None: ...
    def __new__(
        cls,
        path: str = "/",
        headers: Iterable[tuple[str, str]] | None = None,
        origin: str | None = None,
        subprotocols: Iterable[str] | None = None,
        extensions: Iterable[str] | None = None,
        selected_subprotocol: str | None = None,
    ) -> Self: ...
    def header(self, name: str, default: Any = None) -> str | Any:
        """The first header named ``name`` (case-insensitive), or ``default``."""

@final
class Open:
    """The handshake finished; messages may flow."""

    __match_args__: ClassVar[tuple[str, ...]] = ("subprotocol",)
    @property
    def subprotocol(self) -> str | None: ...
    def __new__(cls, subprotocol: str | None = None) -> Self: ...

@final
class TextMessage:
    """A complete text message."""

    __match_args__: ClassVar[tuple[str, ...]] = ("data",)
    @property
    def data(self) -> str: ...
    def __new__(cls, data: str) -> Self: ...

@final
class BinaryMessage:
    """A complete binary message."""

    __match_args__: ClassVar[tuple[str, ...]] = ("data",)
    @property
    def data(self) -> bytes: ...
    def __new__(cls, data: _BytesLike) -> Self: ...

@final
class Ping:
    """The peer pinged (answered automatically unless ``auto_pong=False``)."""

    __match_args__: ClassVar[tuple[str, ...]] = ("payload",)
    @property
    def payload(self) -> bytes: ...
    def __new__(cls, payload: _BytesLike | None = None) -> Self: ...

@final
class Pong:
    """The peer sent a pong."""

    __match_args__: ClassVar[tuple[str, ...]] = ("payload",)
    @property
    def payload(self) -> bytes: ...
    def __new__(cls, payload: _BytesLike | None = None) -> Self: ...

@final
class Closed:
    """The connection is over; always the last event."""

    __match_args__: ClassVar[tuple[str, ...]] = (
        "code",
        "reason",
        "by_peer",
        "clean",
        "error",
        "error_message",
    )
    @property
    def code(self) -> int:
        """The peer's code if it closed first, ours if we did, 1006 without a
        close frame, 1005 for a close frame without a code."""
    @property
    def reason(self) -> str: ...
    @property
    def by_peer(self) -> bool: ...
    @property
    def clean(self) -> bool:
        """Close frames went both ways."""
    @property
    def error(self) -> str | None:
        """Stable kind of what went wrong (``"protocol"``, ``"pong_timeout"``,
        ``"unexpected_eof"``, ...) or ``None``."""
    @property
    def error_message(self) -> str | None: ...
    def __new__(
        cls,
        code: int = 1006,
        reason: str = "",
        by_peer: bool = False,
        clean: bool = False,
        error: str | None = None,
        error_message: str | None = None,
    ) -> Self: ...

@final
class Close:
    """For ``send()``: start the closing handshake."""

    __match_args__: ClassVar[tuple[str, ...]] = ("code", "reason")
    @property
    def code(self) -> int: ...
    @property
    def reason(self) -> str: ...
    def __new__(cls, code: int | None = None, reason: str | None = None) -> Self:
        """``None`` means code 1000 and an empty reason."""

@final
class AcceptConnection:
    """For ``send()`` on a server: accept the pending request."""

    __match_args__: ClassVar[tuple[str, ...]] = ("subprotocol", "headers")
    @property
    def subprotocol(self) -> str | None: ...
    @property
    def headers(self) -> _Headers | None: ...
    def __new__(cls, subprotocol: str | None = None, headers: _Headers | None = None) -> Self: ...

@final
class RejectConnection:
    """For ``send()`` on a server: refuse the pending request."""

    __match_args__: ClassVar[tuple[str, ...]] = ("status", "body", "headers")
    @property
    def status(self) -> int: ...
    @property
    def body(self) -> str | bytes: ...
    @property
    def headers(self) -> _Headers | None: ...
    def __new__(
        cls,
        status: int | None = None,
        body: str | _BytesLike | None = None,
        headers: _Headers | None = None,
    ) -> Self:
        """``None`` means status 400 and an empty body."""

_Event: TypeAlias = Request | Open | TextMessage | BinaryMessage | Ping | Pong | Closed
_Sendable: TypeAlias = (
    TextMessage | BinaryMessage | Ping | Pong | Close | AcceptConnection | RejectConnection | str | _BytesLike
)

# ------------------------------------------------------------- connection ---

@disjoint_base
class Connection:
    """A sans-IO WebSocket connection (base of ``ServerConnection`` and
    ``ClientConnection``).

    Drive it like wsproto: ``receive_data()`` what you read, iterate
    ``events()``, then write ``data_to_send()``; call ``handle_timeout()``
    when ``poll_timeout()`` is due. Frames are decoded as events are
    iterated, so take events before bytes."""

    def receive_data(self, data: _BytesLike | None, now: _Millis | None = None) -> None:
        """Feeds bytes read from the transport (any number of frames, or part
        of one). ``None`` or ``b""`` means end of stream. Bad input from the
        peer never raises: it ends the connection with a ``Closed`` event."""
    def receive_eof(self, now: _Millis | None = None) -> None:
        """The transport reached end of stream."""
    def events(self) -> EventIter:
        """A lazy iterator over pending events."""
    def next_event(self) -> _Event | None:
        """The next pending event, or ``None``."""
    def data_to_send(self) -> bytes:
        """Every byte waiting to be written, concatenated (``b""`` if none)."""
    def send_text(self, text: str) -> None: ...
    def send_binary(self, data: _BytesLike) -> None: ...
    def send_messages(self, messages: Iterable[str | _BytesLike]) -> None:
        """Queues many messages: ``str`` as text, bytes-like as binary."""
    def send_fragment(self, data: str | _BytesLike, fin: bool) -> None:
        """Queues one fragment of a streamed message."""
    def ping(self, payload: _BytesLike | None = None) -> None: ...
    def pong(self, payload: _BytesLike | None = None) -> None: ...
    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Starts the closing handshake (``None``: code 1000, no reason)."""
    def send(self, event: _Sendable) -> bytes:
        """Performs ``event`` and returns ``data_to_send()``."""
    def poll_timeout(self) -> int | None:
        """When (ms) ``handle_timeout()`` must be called next, if ever."""
    def handle_timeout(self, now: _Millis | None = None) -> None: ...
    @property
    def state(self) -> _State: ...
    @property
    def closed(self) -> bool: ...
    @property
    def role(self) -> Literal["server", "client"]: ...
    @property
    def buffered_amount(self) -> int: ...
    @property
    def subprotocol(self) -> str | None: ...

@final
class ServerConnection(Connection):
    """The server role. Keyword settings: ``max_frame_size``,
    ``max_message_size``, ``max_fragments``, ``max_handshake_bytes``,
    ``max_headers``, ``max_outbound_bytes``, ``ping_interval_ms``,
    ``pong_timeout_ms``, ``idle_timeout_ms``, ``handshake_timeout_ms``,
    ``close_timeout_ms`` (``None`` turns a timer off), ``auto_pong``,
    ``subprotocols``, ``origins``, ``allow_missing_origin``,
    ``buffer_retain``. ``timers=False`` starts with every timer off."""

    def __new__(cls, *, now: _Millis | None = None, timers: bool = True, **config: Any) -> Self: ...
    def accept(self, subprotocol: str | None = None, headers: _Headers | None = None) -> None:
        """Accepts the pending request (``subprotocol=""`` selects none)."""
    def reject(
        self,
        status: int | None = None,
        body: str | _BytesLike | None = None,
        headers: _Headers | None = None,
    ) -> None:
        """Refuses the pending request with an HTTP status (300-599; ``None``
        means 400) and a body (``None``: empty)."""

@final
class ClientConnection(Connection):
    """The client role for ``ws://host[:port]/path``; the upgrade request is
    queued at once. ``seed`` makes keys deterministic (tests only)."""

    def __new__(
        cls,
        url: str,
        *,
        subprotocols: Iterable[str] | None = None,
        origin: str | None = None,
        headers: _Headers | None = None,
        seed: int | None = None,
        now: _Millis | None = None,
        timers: bool = True,
        **config: Any,
    ) -> Self: ...

@final
class EventIter:
    """The lazy iterator ``Connection.events()`` returns."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> _Event: ...

def websocket_settings() -> list[str]:
    """Names of the WebSocket keyword settings (for hosts that split keyword
    arguments between a connection and a session)."""

# ---------------------------------------------------------------- session ---
# Re-exported by ``evsock.session`` under the names after ``Session``
# (``SessionSend`` is ``evsock.session.Send``, and so on).

@final
class SessionSend:
    """Send ``message`` on the current transport connection: a ``str`` as a
    text message, ``bytes`` as a binary one."""

    __match_args__: ClassVar[tuple[str, ...]] = ("message",)
    @property
    def message(self) -> _Wire: ...

@final
class SessionEstablished:
    """The session handshake completed on a new connection; ``resumed`` is
    false for a fresh session."""

    __match_args__: ClassVar[tuple[str, ...]] = ("session_id", "resumed")
    @property
    def session_id(self) -> str: ...
    @property
    def resumed(self) -> bool: ...

@final
class SessionReset:
    """Client: the server could not resume the session; a fresh one follows
    and pending requests failed. ``unconfirmed`` is the range ``(first,
    last)`` of our reliable ids never confirmed as received, or ``None``."""

    __match_args__: ClassVar[tuple[str, ...]] = ("unconfirmed",)
    @property
    def unconfirmed(self) -> tuple[int, int] | None: ...

@final
class SessionGap:
    """Incoming reliable ids ``first..=last`` were evicted by the peer and
    will never arrive."""

    __match_args__: ClassVar[tuple[str, ...]] = ("first", "last")
    @property
    def first(self) -> int: ...
    @property
    def last(self) -> int: ...

@final
class SessionMessage:
    """An application event. ``id`` is its reliable sequence number, or
    ``None`` for fire-and-forget. ``data`` is decoded on first access; ``raw``
    is the encoded element (``str`` JSON or ``bytes`` MessagePack)."""

    __match_args__: ClassVar[tuple[str, ...]] = ("event", "data", "id")
    @property
    def event(self) -> str: ...
    @property
    def id(self) -> int | None: ...
    @property
    def data(self) -> Any: ...
    @property
    def raw(self) -> _Wire: ...

@final
class SessionRequest:
    """An incoming request: answer with ``reply(req, data)`` or
    ``reply_error(req, data)`` within ``timeout_ms``."""

    __match_args__: ClassVar[tuple[str, ...]] = ("req", "event", "data")
    @property
    def req(self) -> int: ...
    @property
    def event(self) -> str: ...
    @property
    def timeout_ms(self) -> int: ...
    @property
    def idempotency_key(self) -> str | None: ...
    @property
    def data(self) -> Any: ...
    @property
    def raw(self) -> _Wire: ...

@final
class SessionReply:
    """The reply to our request ``req``."""

    __match_args__: ClassVar[tuple[str, ...]] = ("req", "data")
    @property
    def req(self) -> int: ...
    @property
    def data(self) -> Any: ...
    @property
    def raw(self) -> _Wire: ...

@final
class SessionRequestFailed:
    """Our request ``req`` ended without a reply. ``error`` is ``"timeout"``,
    ``"session_closed"``, ``"resume_failed"`` or ``"remote"`` (the peer
    answered with an error; then ``data`` / ``raw`` hold its error data)."""

    __match_args__: ClassVar[tuple[str, ...]] = ("req", "error", "data")
    @property
    def req(self) -> int: ...
    @property
    def error(self) -> str: ...
    @property
    def data(self) -> Any: ...
    @property
    def raw(self) -> _Wire | None: ...

@final
class SessionReconnect:
    """Client: the reconnect delay has passed; open a new transport now and
    call ``handle_connected()`` (or ``handle_disconnected()`` if it fails)."""

@final
class SessionCloseTransport:
    """Close the current transport connection (the session already treats it
    as gone). ``reason``: ``"idle_timeout"``, ``"handshake_timeout"``,
    ``"protocol_error"``, ``"go_away"`` or ``"session_closed"``."""

    __match_args__: ClassVar[tuple[str, ...]] = ("reason",)
    @property
    def reason(self) -> str: ...

@final
class SessionExpired:
    """Server: the resume window passed without a reconnect; drop the
    session."""

@final
class SessionClosed:
    """The session ended for good."""

    __match_args__: ClassVar[tuple[str, ...]] = ("by_peer",)
    @property
    def by_peer(self) -> bool: ...

@final
class SessionErrorEvent:
    """The session ignored a bad input. ``code`` is a stable name
    (``"envelope"``, ``"out_of_order"``, ``"wrong_kind"``, ...), ``message``
    describes it."""

    __match_args__: ClassVar[tuple[str, ...]] = ("code", "message")
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...

@final
class SessionHello:
    """What ``peek_hello()`` read from the first message of a connection."""

    @property
    def format(self) -> _Format: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def rx(self) -> int: ...
    @property
    def lo(self) -> int: ...
    @property
    def version(self) -> int: ...

_SessionOutput: TypeAlias = (
    SessionSend
    | SessionEstablished
    | SessionReset
    | SessionGap
    | SessionMessage
    | SessionRequest
    | SessionReply
    | SessionRequestFailed
    | SessionReconnect
    | SessionCloseTransport
    | SessionExpired
    | SessionClosed
    | SessionErrorEvent
)

@final
class SessionOutputIter:
    """The lazy iterator ``Session.outputs()`` returns."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> _SessionOutput: ...

@final
class Session:
    """One end of an evsock session: a sans-IO state machine over whole
    transport messages (normally WebSocket messages).

    Feed it ``handle_connected()``, ``handle_message()``,
    ``handle_disconnected()`` and ``handle_timeout()``; drain ``outputs()``
    after every call: ``SessionSend`` outputs go on the transport, the rest
    are events. Data arguments are Python values (encoded in the session's
    format) unless ``raw=True``, in which case they are already-encoded JSON
    text (``str``) or MessagePack (``bytes``). Create one with
    ``Session.client()`` or ``Session.server()``; keyword settings are the
    names ``session_settings()`` lists."""

    @staticmethod
    def client(
        *,
        format: _Format = "json",
        seed: int | None = None,
        rng_values: Iterable[int] | None = None,
        **config: Any,
    ) -> Session:
        """A client session. Open a transport, then call
        ``handle_connected()``; the session sends its hello. ``seed`` makes
        reconnect jitter deterministic; ``rng_values`` scripts the random
        numbers outright (test vectors)."""
    @staticmethod
    def server(
        session_id: str,
        *,
        format: _Format = "json",
        seed: int | None = None,
        rng_values: Iterable[int] | None = None,
        **config: Any,
    ) -> Session:
        """A server session with the given id (see ``new_session_id()``);
        it answers in the format of the hello it receives."""
    def handle_connected(self, now: _Millis | None = None) -> None:
        """A transport connection opened (a client sends its hello now)."""
    def handle_disconnected(self, now: _Millis | None = None) -> None:
        """The transport closed or failed (also a failed connection attempt):
        a client schedules a reconnect, a server starts its resume window."""
    def handle_message(self, message: str | _BytesLike, now: _Millis | None = None) -> None:
        """A whole transport message arrived: ``str`` for text, bytes for
        binary. Bad input never raises; it yields a ``SessionErrorEvent``."""
    def handle_timeout(self, now: _Millis | None = None) -> None:
        """Runs the timers due at ``now``."""
    def send(self, event: str, data: Any = None, *, raw: bool = False, now: _Millis | None = None) -> None:
        """Sends a fire-and-forget event (only while established)."""
    def send_reliable(
        self, event: str, data: Any = None, *, raw: bool = False, now: _Millis | None = None
    ) -> int:
        """Sends a reliable event (numbered, acknowledged, retransmitted after
        a reconnect, delivered once and in order) and returns its id. While
        the session handshakes it raises SessionError (kind ``buffer_full``)
        once the resume buffer is full."""
    def request(
        self,
        event: str,
        data: Any = None,
        *,
        timeout_ms: _Millis,
        idempotency_key: str | None = None,
        raw: bool = False,
        now: _Millis | None = None,
    ) -> int:
        """Sends a request and returns its id; it ends in exactly one
        ``SessionReply`` or ``SessionRequestFailed``."""
    def reply(self, req: int, data: Any = None, *, raw: bool = False, now: _Millis | None = None) -> None:
        """Answers incoming request ``req``."""
    def reply_error(
        self, req: int, data: Any = None, *, raw: bool = False, now: _Millis | None = None
    ) -> None:
        """Answers incoming request ``req`` with an error."""
    def close(self, now: _Millis | None = None) -> None:
        """Ends the session for good (tells the peer when connected)."""
    def go_away(self, retry_after_ms: _Millis, now: _Millis | None = None) -> None:
        """Server: asks the client to disconnect and stay away for
        ``retry_after_ms``; the session stays resumable."""
    def outputs(self) -> SessionOutputIter:
        """A lazy iterator over pending outputs."""
    def next_output(self) -> _SessionOutput | None:
        """The next pending output, or ``None``."""
    def poll_timeout(self) -> int | None:
        """When (ms) ``handle_timeout()`` must be called next, or ``None``."""
    def encode(self, value: Any) -> _Wire:
        """Encodes ``value`` in this session's format, for ``raw=True``."""
    @property
    def role(self) -> Literal["client", "server"]: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def format(self) -> _Format: ...
    @property
    def established(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def pending_requests(self) -> int: ...
    @property
    def unacked_messages(self) -> int: ...
    @property
    def unacked_bytes(self) -> int: ...
    @property
    def last_received_id(self) -> int: ...

def new_session_id(seed: int | None = None) -> str:
    """A fresh random session id (22 characters, base64url)."""

def peek_hello(message: str | _BytesLike) -> SessionHello:
    """Reads the hello from the first message of a new connection; raises
    ``SessionError`` (kind ``"envelope"``) if it is not one."""

def encode_go_away(retry_after_ms: _Millis, format: _Format = "json") -> _Wire:
    """A session-less ``evs/bye`` asking a client to retry after
    ``retry_after_ms``."""

def encode(value: Any, format: _Format = "json") -> _Wire:
    """Encodes a Python value as session data: ``str`` JSON or ``bytes``
    MessagePack."""

def decode(raw: str | _BytesLike) -> Any:
    """Decodes session data: a ``str`` as JSON, bytes as MessagePack."""

def session_settings() -> list[str]:
    """Names of the session keyword settings."""
