"""The errors a user can cause and fix, from every package; the CLI and the HTTP service turn
these into one readable line (exit status 2) or one JSON error shape. Importing this module
loads only the packages' error modules, so `judgecal --help` stays fast."""

from human_labels.errors import AgreementError, LabelsError
from human_labels.inputs import InputError as LabelsInputError
from judge.errors import JudgeError
from rubrics.aggregate import AggregationError
from rubrics.errors import RubricError
from rubrics.inputs import InputError


class JudgecalHTTPError(Exception):
    """The service answered with an error (its type and message are kept)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{status} {kind}: {message}")
        self.status, self.kind, self.message = status, kind, message


USER_ERRORS: tuple[type[Exception], ...] = (
    RubricError,
    AggregationError,
    LabelsError,
    AgreementError,
    JudgeError,
    InputError,
    LabelsInputError,
    JudgecalHTTPError,
)

__all__ = ["USER_ERRORS", "JudgecalHTTPError"]
