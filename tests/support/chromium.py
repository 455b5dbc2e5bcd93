"""A real headless Chromium, driven over the DevTools protocol, to measure how a page lays out.

Why the protocol and not `--window-size=400,… --dump-dom`: Chromium clamps a window to at least
500 px wide, so a 400 px "phone" needs the viewport set through `Emulation.setDeviceMetricsOverride`.
`--remote-debugging-pipe` carries the protocol over two pipes (the browser reads NUL-terminated JSON
commands on fd 3 and writes replies and events on fd 4): no port, no websocket library.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Not a performance bound: only how long a wedged browser may take before the test fails.
REPLY_TIMEOUT = 60.0

# Runs in the page after load. Besides the document's scroll width, it lists visible elements that
# stick out of the viewport: a box cut off by `overflow:hidden` would not show in scrollWidth, and
# cut-off counts and next steps are exactly what issue 12 is about.
MEASURE = """(() => {
  const root = document.documentElement;
  const viewport = root.clientWidth;
  const outside = [];
  for (const element of document.body.querySelectorAll('*')) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right > viewport + 0.5 || box.left < -0.5) {
      const text = (element.innerText || element.textContent || '').trim().replace(/\\s+/g, ' ');
      const where = `<${element.tagName.toLowerCase()}> ${Math.round(box.left)}..${Math.round(box.right)}`;
      // The innermost elements first: they name what is too wide; their containers only follow.
      outside.push([element.children.length, `${where}: ${text.slice(0, 60)}`]);
    }
  }
  outside.sort((a, b) => a[0] - b[0]);
  const card = [...document.querySelectorAll('table')].find((t) => t.style.maxWidth === '600px');
  return {
    scrollWidth: root.scrollWidth, clientWidth: viewport, innerWidth: window.innerWidth,
    cardWidth: card ? card.getBoundingClientRect().width : null, outside: outside.slice(0, 8).map((o) => o[1]),
    outsideCount: outside.length,
  };
})()"""


@dataclass(frozen=True)
class Layout:
    """What the page measured at one viewport width."""

    scroll_width: int
    client_width: int
    inner_width: int
    card_width: float | None  # the max-width:600px email card, when there is one
    outside: tuple[str, ...]  # a few elements that stick out of the viewport (for the failure message)
    outside_count: int

    @property
    def scrolls_sideways(self) -> bool:
        return self.scroll_width > self.client_width


def find_chromium() -> str | None:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless browser; `measure` opens a page in a new tab at a given viewport width."""

    def __init__(self, binary: str, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # The browser wants its ends on fds 3 and 4 exactly. Copies numbered 10 and up first, so the
        # two dup2 calls in the child cannot overwrite each other.
        child_read = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
        child_write = fcntl.fcntl(replies_write, fcntl.F_DUPFD, 10)
        os.close(commands_read)
        os.close(replies_write)

        def to_3_and_4() -> None:
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        args = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
            f"--user-data-dir={profile}", "about:blank",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=to_3_and_4,
        )
        os.close(child_read)
        os.close(child_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Sends one command and returns its result; protocol errors raise with the browser's message."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self._events.append(reply)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        for index, event in enumerate(self._events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self._events.pop(index)
        while True:
            event = self._receive()
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            self._events.append(event)

    def measure(self, page: Path, width: int, height: int = 900, mobile: bool = False) -> Layout:
        """Loads `page` in a fresh tab whose viewport is `width` CSS pixels wide, and measures it."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
            self.call("Emulation.setDeviceMetricsOverride", metrics, session)
            self.call("Page.enable", {}, session)
            self.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
            self.wait_event("Page.loadEventFired", session)
            result = self.call("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, session)
            value = result["result"]["value"]
        finally:
            self.call("Target.closeTarget", {"targetId": target})
            self._events = [e for e in self._events if e.get("sessionId") != session]
        return Layout(
            scroll_width=int(value["scrollWidth"]),
            client_width=int(value["clientWidth"]),
            inner_width=int(value["innerWidth"]),
            card_width=value["cardWidth"],
            outside=tuple(value["outside"]),
            outside_count=int(value["outsideCount"]),
        )

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            self._process.kill()
        try:
            self._process.wait(timeout=REPLY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        finally:
            os.close(self._commands)
            os.close(self._replies)

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + REPLY_TIMEOUT
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"Chromium sent nothing for {REPLY_TIMEOUT:.0f} s")
            chunk = os.read(self._replies, 65536)
            if not chunk:
                raise OSError(f"Chromium closed the protocol pipe (exit status {self._process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed


@contextmanager
def chromium(binary: str, profile: Path) -> Iterator[Chromium]:
    """A running browser for the duration of the block, always stopped after."""
    browser = Chromium(binary, profile)
    try:
        yield browser
    finally:
        browser.close()
