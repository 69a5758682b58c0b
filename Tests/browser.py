"""Headless Chromium for the test suite, driven over the DevTools protocol (CDP).

Debian's `chromium` (installed by scripts/setup.sh) runs headless with a throw-away profile; the DevTools
endpoint is a WebSocket on 127.0.0.1 that we talk to with python-websockets' synchronous client.

    from browser import Chromium, spki_hash

    with Chromium(extra_args=[f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"]) as browser:
        page = browser.new_page()
        page.navigate("https://127.0.0.1:8443/")          # waits for the load event
        value = page.evaluate("fetch('/x').then(r => r.status)", await_promise=True)
        page.wait_for("window.done === true", timeout=10)

`Chromium.launch_or_skip()` skips the calling test (pytest) when no chromium binary is installed. The browser
process is stopped by its PID when the `with` block ends.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from websockets.sync.client import connect as ws_connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium_binary() -> str | None:
    """The path of a Chromium binary (`$CHROMIUM` first), or None."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def spki_hash(cert_pem_path: str | os.PathLike[str]) -> str:
    """Base64 of the SHA-256 of a PEM certificate's SubjectPublicKeyInfo (DER), the value Chromium's
    `--ignore-certificate-errors-spki-list` takes to trust a throw-away certificate."""
    pubkey = subprocess.run(
        ["openssl", "x509", "-in", str(cert_pem_path), "-noout", "-pubkey"],
        check=True, capture_output=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey, check=True, capture_output=True
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class CDPError(RuntimeError):
    """A DevTools command failed, a page script threw, or a wait timed out."""


class Page:
    """One tab. Commands are synchronous; events received meanwhile are kept (bounded) for `events()`."""

    MAX_EVENTS = 10_000

    def __init__(self, browser: "Chromium", target_id: str, ws_url: str) -> None:
        self.browser = browser
        self.target_id = target_id
        # Entered as a context manager (websockets ≥ 17.1 deprecates a bare connect()); close() exits it.
        self._ws = ws_connect(ws_url, max_size=None, open_timeout=10).__enter__()
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self.console: list[str] = []

    # -- protocol -------------------------------------------------------------------------------------------
    def _record(self, message: dict[str, Any]) -> None:
        method = message.get("method", "")
        if method == "Runtime.consoleAPICalled":
            args = message.get("params", {}).get("args", [])
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        if len(self._events) < self.MAX_EVENTS:
            self._events.append(message)

    def send(self, method: str, timeout: float = 15.0, **params: Any) -> dict[str, Any]:
        """Sends one CDP command and returns its `result`; raises CDPError on an `error` answer or timeout."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CDPError(f"{method}: no answer in {timeout} s")
            try:
                raw = self._ws.recv(timeout=remaining)
            except TimeoutError as error:
                raise CDPError(f"{method}: no answer in {timeout} s") from error
            message = json.loads(raw)
            if message.get("id") == ident:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._record(message)

    def pump(self, seconds: float) -> None:
        """Receives (and keeps) events for `seconds`."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self._record(json.loads(self._ws.recv(timeout=remaining)))
            except TimeoutError:
                return

    def events(self, method: str | None = None) -> list[dict[str, Any]]:
        """Events received so far (all, or those named `method`, e.g. `Network.webSocketCreated`)."""
        return [e for e in self._events if method is None or e.get("method") == method]

    # -- conveniences ---------------------------------------------------------------------------------------
    def navigate(self, url: str, timeout: float = 15.0) -> None:
        """Loads `url` and waits for its load event."""
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CDPError(f"{url}: no load event in {timeout} s")
            try:
                self._record(json.loads(self._ws.recv(timeout=remaining)))
            except TimeoutError:
                continue
        self._events = [e for e in self._events if e.get("method") != "Page.loadEventFired"]

    def evaluate(self, expression: str, await_promise: bool = True, timeout: float = 15.0) -> Any:
        """Evaluates a JavaScript expression in the page (awaiting a returned promise) and returns its value
        (JSON-serializable results only); a thrown exception becomes CDPError with its description."""
        result = self.send(
            "Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=await_promise,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            description = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"script threw: {description}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout: float = 15.0, interval: float = 0.05) -> Any:
        """Polls the JavaScript expression `condition` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(condition, await_promise=True)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out after {timeout} s waiting for: {condition}")
            self.pump(interval)

    def close(self) -> None:
        try:
            self._ws.__exit__(None, None, None)
        except Exception:
            pass


class Chromium:
    """A headless Chromium process with a throw-away profile. Use as a context manager."""

    def __init__(self, extra_args: list[str] | tuple[str, ...] = (), timeout: float = 20.0,
                 binary: str | None = None) -> None:
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.binary = binary or chromium_binary()
        self.process: subprocess.Popen[bytes] | None = None
        self.profile: str | None = None
        self.port: int | None = None
        self.pages: list[Page] = []

    @classmethod
    def launch_or_skip(cls, **kwargs: Any) -> "Chromium":
        import pytest

        if chromium_binary() is None and kwargs.get("binary") is None:
            pytest.skip("no chromium binary (scripts/setup.sh installs Debian's `chromium`)")
        return cls(**kwargs)

    def __enter__(self) -> "Chromium":
        if self.binary is None:
            raise CDPError("no chromium binary found (install Debian's `chromium`, or set $CHROMIUM)")
        self.profile = tempfile.mkdtemp(prefix="chromium-test-")
        args = [
            self.binary, "--headless=new", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={self.profile}", "--no-first-run", "--no-default-browser-check", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--mute-audio",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        args += self.extra_args + ["about:blank"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self.port = self._wait_for_devtools_port()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _wait_for_devtools_port(self) -> int:
        assert self.profile is not None and self.process is not None
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise CDPError(f"chromium exited with {self.process.returncode}: {stderr[-2000:]}")
            if marker.exists():
                lines = marker.read_text().splitlines()
                if lines and lines[0].isdigit():
                    return int(lines[0])
            time.sleep(0.05)
        raise CDPError(f"chromium did not open its DevTools port in {self.timeout} s")

    def _http(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def new_page(self) -> Page:
        """Opens a new tab on about:blank."""
        target = self._http("/json/new?about:blank", method="PUT")
        page = Page(self, target["id"], target["webSocketDebuggerUrl"])
        self.pages.append(page)
        return page

    def _stop(self) -> None:
        for page in self.pages:
            page.close()
        self.pages.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None


def run_in_page(url: str, script: str, extra_args: list[str] | None = None, timeout: float = 20.0,
                on_page: Callable[[Page], None] | None = None) -> Any:
    """One-shot helper: opens `url` in a fresh headless Chromium and returns the value of `script`."""
    with Chromium(extra_args=extra_args or []) as browser:
        page = browser.new_page()
        page.navigate(url, timeout=timeout)
        if on_page is not None:
            on_page(page)
        return page.evaluate(script, await_promise=True, timeout=timeout)
