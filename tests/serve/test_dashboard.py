"""The dashboard in headless Chromium against the live API: the DOM holds the API's numbers."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.serve import _reference as ref

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--virtual-time-budget=15000"]  # virtual time waits for the page's fetches


class _Elements(HTMLParser):
    """Attributes and text of every element with an id or a class, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict] = []
        self._open: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        element = {"tag": tag, **{k: v for k, v in attrs}, "text": ""}
        self.found.append(element)
        self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1]["text"] += data

    def by_id(self, element_id: str) -> dict:
        return next(e for e in self.found if e.get("id") == element_id)

    def by_class(self, cls: str) -> list[dict]:
        return [e for e in self.found if e.get("class") == cls]


def _chromium(tmp_path: Path, url: str, *action: str) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("headless Chromium is needed: apt-get install -y chromium (.ci/run installs it)")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"  # a fresh profile per run
    result = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_dashboard_renders_live_numbers(serve_api, tmp_path):
    url = f"{serve_api.url}/dashboard#tenant=acme&token={serve_api.token('acme', 'cmo')}&model=markov"
    dom = _Elements()
    dom.feed(_chromium(tmp_path, url, "--dump-dom"))
    assert dom.by_id("status")["text"] == "ready"
    timeline = ref.kpis(serve_api.rows, "acme", "1h")
    points = dom.by_class("point")
    assert [p["data-window"] for p in points] == [item["window_start"] for item in timeline]
    ref.assert_same([float(p["data-value"]) for p in points], [item["revenue"] for item in timeline])
    bars = {b["data-channel"]: float(b["data-value"]) for b in dom.by_class("bar")}
    ref.assert_same(bars, {channel: v[1] for channel, v in ref.attribution(serve_api.rows, "acme")["markov"].items()})
    assert dom.by_id("attribution-chart")["data-model"] == "markov"
    assert int(dom.by_id("alerts-count")["text"]) == len(ref.alerts(serve_api.rows, "acme"))
    assert int(dom.by_id("quarantine-total")["text"]) == sum(ref.quarantine(serve_api.rows, "acme").values())
    shot = tmp_path / "dashboard.png"
    _chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1000,1000")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_dashboard_shows_the_api_error_for_a_foreign_tenant(serve_api, tmp_path):
    url = f"{serve_api.url}/dashboard#tenant=globex&token={serve_api.token('acme', 'cmo')}"
    dom = _Elements()
    dom.feed(_chromium(tmp_path, url, "--dump-dom"))
    status = dom.by_id("status")
    assert status["class"] == "error" and "403 wrong_tenant" in status["text"]
    assert dom.by_class("point") == []
