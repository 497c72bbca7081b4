"""judgecal: tell whether an LLM judge can be trusted, make it more trustworthy, serve it."""

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
