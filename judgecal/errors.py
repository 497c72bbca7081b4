"""The errors a user can cause and fix, from every package; the CLI and the HTTP service turn
these into one readable line (exit status 2) or one JSON error shape."""

from human_labels import AgreementError, LabelsError
from human_labels.inputs import InputError as LabelsInputError
from judge import JudgeError
from judgecal.client import JudgecalHTTPError
from rubrics import AggregationError, RubricError
from rubrics.inputs import InputError

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

__all__ = ["USER_ERRORS"]
