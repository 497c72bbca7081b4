"""judgecal: tell whether an LLM judge can be trusted, make it more trustworthy, serve it."""

from judgecal.api import agreement, import_labels, resume_run, run_judge, summarize
from judgecal.errors import USER_ERRORS

__all__ = ["USER_ERRORS", "agreement", "import_labels", "resume_run", "run_judge", "summarize"]
