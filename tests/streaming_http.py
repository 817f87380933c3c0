"""A loopback HTTP server that streams files from disk, whole, chunked (no Content-Length) or cut short."""

from __future__ import annotations

import http.server
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.http_thread import serving

BLOCK = 64 * 1024


@dataclass(frozen=True)
class Reply:
    """One answer: the file's bytes sent with their Content-Length (`whole`), with chunked transfer encoding
    and no length (`chunked`), or announced whole but cut off half-way (`short`)."""

    path: Path
    mode: str = "whole"
    pause: float = 0.0  # seconds between blocks: a slow upstream


@dataclass
class StreamingServer:
    base_url: str = ""
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def serve(self, path: str, *replies: Reply) -> str:
        """Answer GETs of `path` with these replies in turn (the last one repeats); returns its URL."""
        self.replies[path] = list(replies)
        return self.base_url + path


@contextmanager
def running_streaming_server() -> Iterator[StreamingServer]:
    """The server on 127.0.0.1 (a free port) in a thread, stopped on exit."""
    state = StreamingServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.requests.append(self.path)
            queue = state.replies.get(self.path)
            if not queue:
                self.send_error(404)
                return
            reply = queue.pop(0) if len(queue) > 1 else queue[0]
            size = reply.path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "audio/x-wav")
            if reply.mode == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(size))
            if reply.mode == "short":
                self.send_header("Connection", "close")
            self.end_headers()
            with reply.path.open("rb") as source:
                sent = 0
                while block := source.read(BLOCK):
                    if reply.mode == "short" and sent + len(block) > size // 2:
                        self.wfile.write(block[: size // 2 - sent])
                        self.close_connection = True
                        return
                    if reply.mode == "chunked":
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                    else:
                        self.wfile.write(block)
                    sent += len(block)
                    if reply.pause:
                        time.sleep(reply.pause)
            if reply.mode == "chunked":
                self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as state.base_url:
        yield state
