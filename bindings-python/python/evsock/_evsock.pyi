"""Type stubs for the compiled core of evsock."""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Literal, final

__version__: str

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
BytesLike = bytes | bytearray | memoryview
Millis = int | float
State = Literal["handshake", "open", "closing", "closed"]

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
    def __init__(
        self,
        path: str = "/",
        headers: Iterable[tuple[str, str]] | None = None,
        origin: str | None = None,
        subprotocols: Iterable[str] | None = None,
        extensions: Iterable[str] | None = None,
        selected_subprotocol: str | None = None,
    ) -> None: ...
    def header(self, name: str, default: Any = None) -> str | Any:
        """The first header named ``name`` (case-insensitive), or ``default``."""

@final
class Open:
    """The handshake finished; messages may flow."""

    __match_args__: ClassVar[tuple[str, ...]] = ("subprotocol",)
    @property
    def subprotocol(self) -> str | None: ...
    def __init__(self, subprotocol: str | None = None) -> None: ...

@final
class TextMessage:
    """A complete text message."""

    __match_args__: ClassVar[tuple[str, ...]] = ("data",)
    @property
    def data(self) -> str: ...
    def __init__(self, data: str) -> None: ...

@final
class BinaryMessage:
    """A complete binary message."""

    __match_args__: ClassVar[tuple[str, ...]] = ("data",)
    @property
    def data(self) -> bytes: ...
    def __init__(self, data: BytesLike) -> None: ...

@final
class Ping:
    """The peer pinged (answered automatically unless ``auto_pong=False``)."""

    __match_args__: ClassVar[tuple[str, ...]] = ("payload",)
    @property
    def payload(self) -> bytes: ...
    def __init__(self, payload: BytesLike | None = None) -> None: ...

@final
class Pong:
    """The peer sent a pong."""

    __match_args__: ClassVar[tuple[str, ...]] = ("payload",)
    @property
    def payload(self) -> bytes: ...
    def __init__(self, payload: BytesLike | None = None) -> None: ...

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
    def __init__(
        self,
        code: int = 1006,
        reason: str = "",
        by_peer: bool = False,
        clean: bool = False,
        error: str | None = None,
        error_message: str | None = None,
    ) -> None: ...

@final
class Close:
    """For ``send()``: start the closing handshake."""

    __match_args__: ClassVar[tuple[str, ...]] = ("code", "reason")
    @property
    def code(self) -> int: ...
    @property
    def reason(self) -> str: ...
    def __init__(self, code: int = 1000, reason: str = "") -> None: ...

@final
class AcceptConnection:
    """For ``send()`` on a server: accept the pending request."""

    __match_args__: ClassVar[tuple[str, ...]] = ("subprotocol", "headers")
    @property
    def subprotocol(self) -> str | None: ...
    @property
    def headers(self) -> Headers | None: ...
    def __init__(self, subprotocol: str | None = None, headers: Headers | None = None) -> None: ...

@final
class RejectConnection:
    """For ``send()`` on a server: refuse the pending request."""

    __match_args__: ClassVar[tuple[str, ...]] = ("status", "body", "headers")
    @property
    def status(self) -> int: ...
    @property
    def body(self) -> str | bytes: ...
    @property
    def headers(self) -> Headers | None: ...
    def __init__(
        self, status: int = 400, body: str | BytesLike = b"", headers: Headers | None = None
    ) -> None: ...

Event = Request | Open | TextMessage | BinaryMessage | Ping | Pong | Closed
Sendable = TextMessage | BinaryMessage | Ping | Pong | Close | AcceptConnection | RejectConnection | str | BytesLike

# ------------------------------------------------------------- connection ---

class Connection:
    """A sans-IO WebSocket connection (base of ``ServerConnection`` and
    ``ClientConnection``).

    Drive it like wsproto: ``receive_data()`` what you read, iterate
    ``events()``, then write ``data_to_send()``; call ``handle_timeout()``
    when ``poll_timeout()`` is due. Frames are decoded as events are
    iterated, so take events before bytes."""

    def receive_data(self, data: BytesLike | None, now: Millis | None = None) -> None:
        """Feeds bytes read from the transport (any number of frames, or part
        of one). ``None`` or ``b""`` means end of stream. Bad input from the
        peer never raises: it ends the connection with a ``Closed`` event."""
    def receive_eof(self, now: Millis | None = None) -> None:
        """The transport reached end of stream."""
    def events(self) -> Iterator[Event]:
        """A lazy iterator over pending events."""
    def next_event(self) -> Event | None:
        """The next pending event, or ``None``."""
    def data_to_send(self) -> bytes:
        """Every byte waiting to be written, concatenated (``b""`` if none)."""
    def send_text(self, text: str) -> None: ...
    def send_binary(self, data: BytesLike) -> None: ...
    def send_messages(self, messages: Iterable[str | BytesLike]) -> None:
        """Queues many messages: ``str`` as text, bytes-like as binary."""
    def send_fragment(self, data: str | BytesLike, fin: bool) -> None:
        """Queues one fragment of a streamed message."""
    def ping(self, payload: BytesLike | None = None) -> None: ...
    def pong(self, payload: BytesLike | None = None) -> None: ...
    def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the closing handshake."""
    def send(self, event: Sendable) -> bytes:
        """Performs ``event`` and returns ``data_to_send()``."""
    def poll_timeout(self) -> int | None:
        """When (ms) ``handle_timeout()`` must be called next, if ever."""
    def handle_timeout(self, now: Millis | None = None) -> None: ...
    @property
    def state(self) -> State: ...
    @property
    def closed(self) -> bool: ...
    @property
    def role(self) -> Literal["server", "client"]: ...
    @property
    def buffered_amount(self) -> int: ...
    @property
    def subprotocol(self) -> str | None: ...

class ServerConnection(Connection):
    """The server role. Keyword settings: ``max_frame_size``,
    ``max_message_size``, ``max_fragments``, ``max_handshake_bytes``,
    ``max_headers``, ``max_outbound_bytes``, ``ping_interval_ms``,
    ``pong_timeout_ms``, ``idle_timeout_ms``, ``handshake_timeout_ms``,
    ``close_timeout_ms`` (``None`` turns a timer off), ``auto_pong``,
    ``subprotocols``, ``origins``, ``allow_missing_origin``,
    ``buffer_retain``. ``timers=False`` starts with every timer off."""

    def __init__(self, *, now: Millis | None = None, timers: bool = True, **config: Any) -> None: ...
    def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        """Accepts the pending request (``subprotocol=""`` selects none)."""
    def reject(
        self, status: int = 400, body: str | BytesLike = b"", headers: Headers | None = None
    ) -> None:
        """Refuses the pending request with an HTTP status (300-599)."""

class ClientConnection(Connection):
    """The client role for ``ws://host[:port]/path``; the upgrade request is
    queued at once. ``seed`` makes keys deterministic (tests only)."""

    def __init__(
        self,
        url: str,
        *,
        subprotocols: Iterable[str] | None = None,
        origin: str | None = None,
        headers: Headers | None = None,
        seed: int | None = None,
        now: Millis | None = None,
        timers: bool = True,
        **config: Any,
    ) -> None: ...
