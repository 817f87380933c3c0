"""How the emulator reaches the app: over HTTP to a running server, or through Flask's test client.

Both take the absolute *public* URL Twilio would call (the one the signature is computed over) and
deliver the request to wherever the app really runs. Neither keeps cookies, so an app that keeps
call state in cookies fails here rather than on a second worker.

A transport that can also open WebSockets (`WebSocketTransport`: `HttpTransport` can, Flask's test
client cannot) carries Media Streams; `WebSocketConnection` is the small client they use.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import ProtocolError


@dataclass(frozen=True)
class Reply:
    """What the app answered: HTTP status, decoded body and content type."""

    status: int
    body: str
    content_type: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class TransportError(Exception):
    """The request could not be delivered at all (refused connection, timeout)."""


class WebSocketRefused(TransportError):
    """The server answered the WebSocket handshake with an HTTP status instead of switching protocols."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"WebSocket {url}: handshake refused with HTTP {status}")
        self.status = status


class Transport(Protocol):
    """Delivers one webhook. `params` go in a form-encoded body for POST; GET URLs carry them already."""

    def request(self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply: ...

    def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply: ...


@runtime_checkable
class WebSocketTransport(Protocol):
    """A transport that can also open a WebSocket to a public ws:// or wss:// URL (for Media Streams)."""

    def open_websocket(self, url: str, headers: Mapping[str, str]) -> WebSocketConnection: ...


def _split_public(url: str, public_url: str) -> tuple[str, str, str]:
    """Return (base_url, path_below_base, query) for an absolute URL, preferring the public base."""
    parts = urlsplit(url)
    base = public_url.rstrip("/")
    if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
        path = urlsplit(url[len(base) :] or "/").path or "/"
        return base, path, parts.query
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/", parts.query


class HttpTransport:
    """Sends webhooks to a running server at `server_url`, as if Twilio had called `public_url`.

    A URL under `public_url` is rewritten to the same path under `server_url`; the headers a tunnel
    such as ngrok adds (X-Forwarded-Proto/Host) tell the server which public URL was called.
    """

    def __init__(self, server_url: str, public_url: str, timeout: float = 15.0) -> None:
        self.server_url = server_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        # Twilio gives up on a webhook after 15 seconds.
        self.timeout = timeout

    def local_url(self, url: str) -> str:
        """The URL actually requested for a public `url`."""
        base, path, query = _split_public(url, self.public_url)
        if base != self.public_url:
            return url
        return self.server_url + path + (f"?{query}" if query else "")

    def websocket_url(self, url: str) -> str:
        """The URL actually connected to for a public WebSocket `url`: wss://PUBLIC_HOST/path (ws:// when the
        public URL is http) becomes ws://SERVER/path, as `local_url` does for webhooks; other hosts are left."""
        scheme, rest = url.split(":", 1)
        http_scheme = {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme)
        local = self.local_url(f"{http_scheme}:{rest}")
        local_scheme, local_rest = local.split(":", 1)
        return {"http": "ws", "https": "wss"}.get(local_scheme.lower(), local_scheme) + ":" + local_rest

    def open_websocket(self, url: str, headers: Mapping[str, str]) -> WebSocketConnection:
        """Open a WebSocket to the server for a public `url`, with the headers a TLS proxy in front adds.
        Raises WebSocketRefused (an HTTP answer) or TransportError (no connection)."""
        public = urlsplit(url)
        forwarded = {
            "X-Forwarded-Proto": "https" if public.scheme == "wss" else "http",
            "X-Forwarded-Host": public.netloc,
        }
        return WebSocketConnection.connect(self.websocket_url(url), {**forwarded, **headers}, self.timeout)

    def request(self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        public = urlsplit(url)
        all_headers = {"X-Forwarded-Proto": public.scheme, "X-Forwarded-Host": public.netloc, **headers}
        try:
            response = requests.request(
                method,
                self.local_url(url),
                data=dict(params) if method == "POST" else None,
                headers=all_headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TransportError(f"{method} {self.local_url(url)}: {exc}") from exc
        return Reply(response.status_code, response.text, response.headers.get("Content-Type", ""))

    def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        return self.request("POST", url, params, headers)


class FlaskClientTransport:
    """Posts webhooks through `flask_app.test_client()`; the app sees the public scheme and host."""

    def __init__(self, flask_app: Any, public_url: str) -> None:
        self.app = flask_app
        self.public_url = public_url.rstrip("/")
        self.client = flask_app.test_client(use_cookies=False)

    def request(self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        base, path, query = _split_public(url, self.public_url)
        response = self.client.open(
            path,
            method=method,
            base_url=base,
            query_string=query or None,
            data=dict(params) if method == "POST" else None,
            headers=dict(headers),
        )
        try:
            return Reply(response.status_code, response.get_data(as_text=True), response.content_type or "")
        finally:
            response.close()

    def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        return self.request("POST", url, params, headers)

    def open_websocket(self, url: str, headers: Mapping[str, str]) -> WebSocketConnection:
        """Flask's test client speaks only HTTP: every WebSocket fails to connect (as an unreachable one would)."""
        raise TransportError(f"WebSocket {url}: Flask's test client cannot open WebSockets (use HttpTransport)")


class WebSocketConnection:
    """A client WebSocket that sends text messages, for the dev phone's Media Streams.

    Small on purpose (wsproto over a socket, no thread): the connect and the handshake time out, a refused
    handshake reports its HTTP status, and `send` first reads whatever the server sent without blocking,
    so a server that closed the socket is noticed (`closed_by_server`, `close_code`) instead of hanging.
    """

    def __init__(self, url: str, sock: socket.socket, connection: WSConnection) -> None:
        self.url = url  # where it connected
        self._sock = sock
        self._ws = connection
        self.open = True
        self.closed_by_server = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.messages_received = 0

    @classmethod
    def connect(cls, url: str, headers: Mapping[str, str], timeout: float) -> WebSocketConnection:
        """Connect and finish the opening handshake; WebSocketRefused or TransportError when that fails."""
        parts = urlsplit(url)
        secure = parts.scheme.lower() == "wss"
        host = parts.hostname or ""
        try:
            sock = socket.create_connection((host, parts.port or (443 if secure else 80)), timeout=timeout)
        except OSError as exc:
            raise TransportError(f"WebSocket {url}: {exc}") from exc
        try:
            if secure:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            connection = WSConnection(ConnectionType.CLIENT)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            extra = [(name.encode(), value.encode()) for name, value in headers.items()]
            sock.sendall(connection.send(Request(host=parts.netloc, target=target, extra_headers=extra)))
            while True:
                data = sock.recv(65536)
                if not data:
                    raise TransportError(f"WebSocket {url}: the server closed the connection during the handshake")
                connection.receive_data(data)
                for event in connection.events():
                    if isinstance(event, AcceptConnection):
                        return cls(url, sock, connection)
                    if isinstance(event, RejectConnection):
                        raise WebSocketRefused(url, event.status_code)
        except TransportError:
            sock.close()
            raise
        except (OSError, ProtocolError) as exc:
            sock.close()
            raise TransportError(f"WebSocket {url}: {exc}") from exc

    def _lost(self, reason: str, code: int | None = None) -> None:
        self.open = False
        self.closed_by_server = True
        self.close_code = code
        self.close_reason = reason
        self._sock.close()

    def poll(self) -> bool:
        """Read what the server sent, without blocking (answering pings and its close); True while open."""
        while self.open:
            try:
                readable, _, _ = select.select([self._sock], [], [], 0)
                if not readable:
                    break
                data = self._sock.recv(65536)
                if not data:
                    self._lost("the connection was closed without a close frame")
                    break
                self._ws.receive_data(data)
                for event in self._ws.events():
                    if isinstance(event, CloseConnection):
                        with contextlib.suppress(OSError, ProtocolError):
                            self._sock.sendall(self._ws.send(event.response()))
                        self._lost(event.reason or "", event.code)
                        break
                    if isinstance(event, Ping):
                        self._sock.sendall(self._ws.send(event.response()))
                    elif isinstance(event, TextMessage | BytesMessage) and event.message_finished:
                        self.messages_received += 1
            except (OSError, ProtocolError) as exc:
                self._lost(str(exc) or type(exc).__name__)
        return self.open

    def send(self, text: str) -> bool:
        """Send one text message; False (and nothing sent) once the server has closed the connection."""
        if not self.poll():
            return False
        try:
            self._sock.sendall(self._ws.send(TextMessage(data=text)))
        except (OSError, ProtocolError) as exc:
            self._lost(str(exc) or type(exc).__name__)
            return False
        return True

    def close(self, wait: float = 1.0) -> None:
        """Close normally: send the close frame, wait up to `wait` seconds for the server's, drop the socket."""
        if not self.poll():
            return
        self.open = False
        try:
            self._sock.sendall(self._ws.send(CloseConnection(code=1000)))
            self._sock.settimeout(wait)
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                self._ws.receive_data(data)
                if any(isinstance(event, CloseConnection) for event in self._ws.events()):
                    break
        except (OSError, ProtocolError):
            pass  # the server went first or is slow: the socket is dropped either way
        finally:
            self._sock.close()
