"""The HTTP server behind `ivr serve`: gunicorn's threaded worker, in one worker process.

Why gunicorn's gthread worker: the webhooks are short blocking WSGI requests and the media WebSocket
(`/twilio/media`) is a long one that only reads. The threaded worker runs both as plain Flask views on one
port, so one reverse-proxy rule serves webhooks and streams, and a stream costs one mostly idle thread
(decoding runs in the decoder pool, not on the web threads). One worker process, because the live takes,
the embedded job worker and the spool replayer live in it; it is started after the fork (`start`), and it
dies with the master: a `kill -9` of `ivr serve` leaves no orphan holding the port or a job.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
GRACEFUL_SECONDS = 5  # on SIGTERM, in-flight webhooks finish; open streams are cut after this


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (the gunicorn master) dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: gunicorn's own parent check ends the worker within seconds
        log.warning("cannot tie the worker's life to the master's on this system")


class _LineServer(BaseApplication):
    def __init__(self, start: Callable[[], Flask], stop: Callable[[], None], options: dict[str, Any]) -> None:
        self._start = start
        self._stop = stop
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        master = os.getpid()

        def post_fork(_server: object, _worker: object) -> None:
            _die_with_parent()
            if os.getppid() != master:  # the master died before prctl took effect
                os._exit(1)

        self.cfg.set("post_fork", post_fork)
        self.cfg.set("worker_exit", lambda _server, _worker: self._stop())

    def load(self) -> Flask:
        return self._start()


def serve_wsgi(
    start: Callable[[], Flask],
    *,
    host: str,
    port: int,
    threads: int,
    stop: Callable[[], None] = lambda: None,
    name: str = "ivr",
) -> None:
    """Serve the app that `start()` builds (called in the worker process, after the fork) until SIGTERM or
    SIGINT; `stop()` runs in the worker as it exits."""
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        "graceful_timeout": GRACEFUL_SECONDS,
        "keepalive": 5,
        "proc_name": name,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        # Which proxies to believe is the app's decision (IVR_TRUSTED_PROXIES), not the server's.
        "forwarded_allow_ips": "",
        "preload_app": False,
    }
    _LineServer(start, stop, options).run()
