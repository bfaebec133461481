"""Open an HTML page in headless Chromium, as a person would, and report what it shows.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages separated by
NUL on file descriptors 3 and 4), so it needs no Python package beyond the standard library
and no network port. :func:`check_page` loads the page, collects console errors, uncaught
exceptions and failed loads, reads back the tables and images the browser actually decoded,
and writes a full-page PNG screenshot.

Chromium: Debian package ``chromium`` (``apt-get install -y chromium``) or any
Chrome/Chromium on PATH (or in ``$REGNN_CHROMIUM``). Runs as root with ``--no-sandbox``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regnn.errors import RegnnError

_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--no-default-browser-check",
    "--remote-debugging-pipe",
)  # fmt: skip

_PROBE = """(() => {
  const imgs = Array.from(document.images).map(im => ({
    kind: (im.currentSrc || im.src).slice(0, 30).split(';')[0].replace('data:', ''),
    loaded: im.complete && im.naturalWidth > 0,
    width: im.naturalWidth, height: im.naturalHeight, alt: im.alt,
    shown: im.getBoundingClientRect().width > 0 }));
  const tables = Array.from(document.querySelectorAll('table')).map(t => ({
    cls: t.className, rows: t.rows.length,
    header: Array.from(t.querySelectorAll('tbody th')).map(th => th.textContent.trim()) }));
  return { title: document.title, images: imgs, tables: tables,
           text: document.body ? document.body.innerText.length : 0,
           height: document.documentElement.scrollHeight };
})()"""


class BrowserError(RegnnError):
    """Chromium could not be started or did not answer."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or None."""
    env = os.environ.get("REGNN_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageCheck:
    """What the browser made of a page."""

    title: str
    console_errors: list[str]
    images: list[dict[str, Any]]
    tables: list[dict[str, Any]]
    height: int
    screenshot: Path | None = None
    messages: list[str] = field(default_factory=list)  # every console message, for reading

    @property
    def loaded_images(self) -> list[dict[str, Any]]:
        return [im for im in self.images if im["loaded"] and im["shown"]]

    @property
    def animations(self) -> int:
        """Number of GIF images that decoded and are laid out on the page."""
        return sum(1 for im in self.loaded_images if im["kind"] == "image/gif")


class _Pipe:
    def __init__(self, exe: str, user_dir: str, width: int, height: int) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def place_fds() -> None:  # the child reads commands on fd 3, writes replies on fd 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        cmd = [exe, *_FLAGS, f"--user-data-dir={user_dir}", f"--window-size={width},{height}",
               "about:blank"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, close_fds=False,
                                     preexec_fn=place_fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._replies: dict[int, dict[str, Any]] = {}
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 20)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cv:
                        self._replies[msg["id"]] = msg
                        self._cv.notify_all()
                else:
                    self.events.put(msg)
        with self._cv:
            self._cv.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        self._next_id += 1
        mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cv:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise BrowserError(f"chromium did not answer {method} "
                                       f"(stderr tail: {self._stderr[-5:]})")
                self._cv.wait(min(left, 0.5))
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)


def check_page(html_path: str | Path, screenshot: str | Path | None = None,
               width: int = 1280, height: int = 900, timeout: float = 60.0,
               chromium: str | None = None) -> PageCheck:
    """Load ``html_path`` in headless Chromium; return what it shows (and screenshot it)."""
    exe = chromium or find_chromium()
    if exe is None:
        raise BrowserError("no Chromium found (apt-get install -y chromium, or set "
                           "REGNN_CHROMIUM)")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="regnn-chromium-") as user_dir:
        pipe = _Pipe(exe, user_dir, width, height)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
            sess = pipe.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.send(f"{domain}.enable", session=sess)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": False}, session=sess)
            pipe.send("Page.navigate", {"url": url}, session=sess, timeout=timeout)
            errors, messages = _wait_for_load(pipe, sess, timeout)
            probe = pipe.send("Runtime.evaluate", {"expression": _PROBE,
                                                   "returnByValue": True}, session=sess)
            info = probe["result"]["value"]
            shot = None
            if screenshot is not None:
                full = max(height, int(info["height"]))
                pipe.send("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": full, "deviceScaleFactor": 1,
                           "mobile": False}, session=sess)
                img = pipe.send("Page.captureScreenshot",
                                {"format": "png", "captureBeyondViewport": True},
                                session=sess, timeout=timeout)
                shot = Path(screenshot)
                shot.parent.mkdir(parents=True, exist_ok=True)
                shot.write_bytes(base64.b64decode(img["data"]))
            errors += _drain_errors(pipe, messages)
        finally:
            pipe.close()
    return PageCheck(info["title"], errors, info["images"], info["tables"],
                     int(info["height"]), shot, messages)


def _event_error(ev: dict[str, Any], messages: list[str]) -> str | None:
    method, p = ev.get("method"), ev.get("params", {})
    if method == "Runtime.consoleAPICalled":
        text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
        messages.append(f"console.{p.get('type')}: {text}")
        if p.get("type") in ("error", "assert"):
            return f"console.{p.get('type')}: {text}"
    elif method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        desc = d.get("exception", {}).get("description", "")
        return f"uncaught exception: {d.get('text')} {desc}"
    elif method == "Log.entryAdded":
        e = p.get("entry", {})
        messages.append(f"log.{e.get('level')}: {e.get('text')} {e.get('url', '')}")
        if e.get("level") == "error":
            return f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip()
    elif method == "Network.loadingFailed":
        return f"failed to load a resource: {p.get('errorText')}"
    return None


def _wait_for_load(pipe: _Pipe, sess: str, timeout: float) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    loaded = False
    while not loaded:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrowserError(f"the page did not finish loading within {timeout:.0f} s")
        try:
            ev = pipe.events.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        err = _event_error(ev, messages)
        if err:
            errors.append(err)
        loaded = ev.get("method") == "Page.loadEventFired"
    time.sleep(0.5)  # let late console messages arrive
    return errors, messages


def _drain_errors(pipe: _Pipe, messages: list[str]) -> list[str]:
    errors = []
    while True:
        try:
            ev = pipe.events.get_nowait()
        except queue.Empty:
            return errors
        err = _event_error(ev, messages)
        if err:
            errors.append(err)
