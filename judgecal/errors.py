"""The errors a user can cause and fix, from every package; the CLI and the HTTP service turn
these into one readable line (exit status 2) or one JSON error shape."""

from human_labels import AgreementError, LabelsError
from judge import JudgeError
from rubrics import AggregationError, RubricError

USER_ERRORS: tuple[type[Exception], ...] = (
    RubricError,
    AggregationError,
    LabelsError,
    AgreementError,
    JudgeError,
)

__all__ = ["USER_ERRORS"]
