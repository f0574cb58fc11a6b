"""The dashboard page: one static HTML file with its own small SVG charts, served by the query API.

No build step and no vendored chart library: the page calls the API with the token it is given
(`/dashboard#tenant=acme&token=...`, or typed in) and draws the charts itself, so it shows exactly what
the API returns.
"""

from __future__ import annotations

from pathlib import Path

DASHBOARD_HTML = (Path(__file__).with_name("dashboard.html")).read_text(encoding="utf-8")
