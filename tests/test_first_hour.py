"""A newcomer's first hour: the README's commands work exactly as written, from a second terminal."""

from __future__ import annotations

import os
import subprocess

from ivr.devphone.faults import IVR, ServeProcess
from tests.factories import HELLO_WAV


def test_ivr_call_in_a_second_terminal_works_against_the_development_server(tmp_path):
    """`./scripts/run` serves with IVR_ENV=development and generated secrets; `.venv/bin/ivr call` typed in
    another terminal (no IVR_ENV, no secrets in its environment) must use the same secrets."""
    shared = {
        "IVR_INSTANCE_DIR": str(tmp_path / "instance"),
        "IVR_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "IVR_MODELS_DIR": str(tmp_path / "models"),
    }
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("IVR_", "TWILIO_"))}
    subprocess.run([IVR, "init-db"], env={**clean, **shared, "IVR_ENV": "development"}, check=True, capture_output=True)
    server = ServeProcess({**shared, "IVR_ENV": "development"}, tmp_path / "serve.log")
    server.environ = {**clean, **shared, "IVR_ENV": "development", "IVR_PUBLIC_URL": server.url}
    with server:
        second_terminal = {**clean, **shared, "IVR_PUBLIC_URL": server.url}  # no IVR_ENV, no secrets
        completed = subprocess.run(
            [
                IVR,
                "call",
                "--server",
                server.url,
                "--keys",
                "1,3*2*501#,1,1",
                "--message",
                str(HELLO_WAV),
                "--linger",
                "5",
            ],
            env=second_terminal,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "很高兴为您服务" in completed.stdout and "您的工单号是" in completed.stdout
    banner = (tmp_path / "serve.log").read_text()
    assert f"{server.url}/console/" in banner and "ivr user create NAME --role admin" in banner
