"""judgecal: tell whether an LLM judge can be trusted, make it more trustworthy, serve it.

Names load on first use (PEP 562), so importing a light part of the package (its
errors, its records) does not import its heavy dependencies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rubrics.lazy import lazy_exports

if TYPE_CHECKING:
    from judge import JudgeSpec, RunnerConfig, __version__
    from judgecal.api import (
        agreement,
        audit,
        distill,
        human_alpha,
        import_labels,
        open_store,
        resume_run,
        run_judge,
    )
    from judgecal.errors import USER_ERRORS

_LAZY: dict[str, str] = {
    "JudgeSpec": "judge",
    "RunnerConfig": "judge",
    "USER_ERRORS": "judgecal.errors",
    "__version__": "judge",
    "agreement": "judgecal.api",
    "audit": "judgecal.api",
    "distill": "judgecal.api",
    "human_alpha": "judgecal.api",
    "import_labels": "judgecal.api",
    "open_store": "judgecal.api",
    "resume_run": "judgecal.api",
    "run_judge": "judgecal.api",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "USER_ERRORS",
    "JudgeSpec",
    "RunnerConfig",
    "__version__",
    "agreement",
    "audit",
    "distill",
    "human_alpha",
    "import_labels",
    "open_store",
    "resume_run",
    "run_judge",
]
