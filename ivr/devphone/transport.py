"""How the emulator reaches the app: over HTTP to a running server, or through Flask's test client.

Both take the absolute *public* URL Twilio would call (the one the signature is computed over) and
deliver the request to wherever the app really runs. Neither keeps cookies, so an app that keeps
call state in cookies fails here rather than on a second worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests


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


class Transport(Protocol):
    """Delivers one webhook. `params` go in a form-encoded body for POST; GET URLs carry them already."""

    def request(self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply: ...

    def post(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply: ...


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
