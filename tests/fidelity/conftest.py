"""Fixtures for the Klaviyo fidelity tests: a running sandbox and the vendor OpenAPI spec.

The sandbox comes from $SANDBOX_URL (the make target starts it); otherwise the already built
`target/debug/sandbox` binary is started on a free port. Nothing is built from here.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SPEC_NAME = "klaviyo-openapi-stable.json"


def _specs_dir() -> Path:
    if os.environ.get("SPECS_DIR"):
        return Path(os.environ["SPECS_DIR"])
    # The shared specs live beside the repository: <repo>/../shared/specs.
    return Path(__file__).resolve().parents[3] / "shared" / "specs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sandbox_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "sandbox"


@pytest.fixture(scope="session")
def sandbox_url():
    url = os.environ.get("SANDBOX_URL")
    if url:
        yield url.rstrip("/")
        return
    binary = _sandbox_binary()
    if not binary.exists():
        pytest.fail(
            f"SANDBOX_URL is not set and {binary} does not exist; "
            "run `cargo build -p sandbox` or start the sandbox and export SANDBOX_URL."
        )
    port = _free_port()
    proc = subprocess.Popen(
        [str(binary), "--port", str(port), "--products", "300", "--profiles", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "listening on" not in line:
            pytest.fail(f"sandbox did not start: {line!r}")
        url = line.strip().rsplit(" ", 1)[-1]
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                requests.get(f"{url}/_sandbox/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def spec():
    path = _specs_dir() / SPEC_NAME
    if not path.exists():
        pytest.fail(f"Klaviyo spec not found at {path} (set SPECS_DIR)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def full_key(sandbox_url):
    return requests.get(f"{sandbox_url}/_sandbox/klaviyo/default-key", timeout=5).json()["key"]
