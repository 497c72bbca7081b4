"""Rendering of a :class:`calibration.Audit`: HTML, JSON and the CLI's text summary. Nothing
here computes a number; every view reads the same typed audit."""

from __future__ import annotations

import json
from pathlib import Path

from calibration import Audit
from judgecal.report.html import render_html
from judgecal.report.text import render_text


def render_json(audit: Audit) -> str:
    return json.dumps(audit.model_dump(mode="json"), indent=2, allow_nan=False)


def write_audit(audit: Audit, out: str | Path) -> Path:
    """Write ``report.html`` and ``report.json`` into ``out``; returns the folder."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(render_json(audit), encoding="utf-8")
    (directory / "report.html").write_text(render_html(audit), encoding="utf-8")
    return directory


__all__ = ["render_html", "render_json", "render_text", "write_audit"]
