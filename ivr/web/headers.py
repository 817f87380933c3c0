"""Security headers for console pages."""

from __future__ import annotations

from typing import Any


def security_headers(response: Any) -> Any:
    """Console pages: no framing, no sniffing, scripts and media only from here."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; media-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'",
    )
    return response
