"""A loopback HTTP server that serves what a test registers, standing in for the model download host."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.http_thread import serving


@dataclass
class Route:
    body: bytes
    status: int = 200
    declared_length: int | None = None  # a Content-Length larger than the body: the connection is cut short


@dataclass
class ModelServer:
    base_url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def serve(self, path: str, body: bytes, **options: int) -> str:
        """Serve `body` at `path`; returns its URL."""
        self.routes[path] = Route(body, **options)
        return self.base_url + path


@contextmanager
def running_model_server() -> Iterator[ModelServer]:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, stopped on exit."""
    state = ModelServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            self.send_response(route.status)
            self.send_header("Content-Length", str(route.declared_length or len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as state.base_url:
        yield state
