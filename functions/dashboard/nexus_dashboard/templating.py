"""The Jinja environment of the pages and the number formats they share."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
NONE = "\N{EN DASH}"  # an absent value, set apart from a zero


def num(v: Any) -> str:
    return NONE if v is None else f"{v:,}"


def tokens(v: Any) -> str:
    if v is None:
        return NONE
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.1f}{unit}"
    return str(v)


def usd(v: Any) -> str:
    if v is None:
        return NONE
    return f"${v:,.2f}" if abs(v) >= 1 else f"${v:.4f}"


def pct(v: Any) -> str:
    return NONE if v is None else f"{v:.0%}" if v >= 0.1 or v == 0 else f"{v:.1%}"


def dur(ms: Any) -> str:
    if ms is None:
        return NONE
    s = ms / 1000
    if s < 1:
        return f"{ms:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s // 60:.0f} min {s % 60:.0f} s"
    return f"{s // 3600:.0f} h {s % 3600 // 60:.0f} min"


def when(v: datetime | str | None) -> str:
    if isinstance(v, str):
        return v
    return NONE if v is None else v.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def model(v: str | None) -> str:
    return (v or NONE).removeprefix("claude-")


def qs(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _asset_urls() -> dict[str, str]:
    """Static files by name -> URL carrying a hash of their content, so they can be cached for good."""
    return {
        p.name: f"/static/{p.name}?v={hashlib.sha256(p.read_bytes()).hexdigest()[:12]}"
        for p in (HERE / "static").iterdir()
        if p.is_file()
    }


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["asset"] = _asset_urls().__getitem__
templates.env.filters.update(num=num, tokens=tokens, usd=usd, pct=pct, dur=dur, when=when, model=model, qs=qs)
