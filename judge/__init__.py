"""The judge pipeline: backends, protocols, parsers, the async runner and the DuckDB store.

Names load on first use (PEP 562), so importing a light part of the package (its
errors, its records) does not import its heavy dependencies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rubrics.lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from judge.backends import REGISTRY, Backend, MockBackend, ReplayBackend, make_backend
    from judge.errors import BackendError, ConfigError, ItemsError, JudgeError, StoreError
    from judge.items import Item, ItemFile, items_from_rows, load_items
    from judge.protocols import PairwiseProtocol, PointwiseProtocol, make_protocol
    from judge.records import LabelRecord, ModelRecord, RewardRecord, RunRecord
    from judge.rundata import RunData, load_run_data
    from judge.runner import Runner, RunSummary
    from judge.spec import JudgeSpec, ProtocolSettings, RunnerConfig, load_judge_spec
    from judge.store import Store
    from judge.types import CallRecord, Completion, GenerateRequest, Message, TokenLogprob, Verdict

_LAZY: dict[str, str] = {
    "Backend": "judge.backends",
    "BackendError": "judge.errors",
    "CallRecord": "judge.types",
    "Completion": "judge.types",
    "ConfigError": "judge.errors",
    "GenerateRequest": "judge.types",
    "Item": "judge.items",
    "ItemsError": "judge.errors",
    "JudgeError": "judge.errors",
    "JudgeSpec": "judge.spec",
    "LabelRecord": "judge.records",
    "Message": "judge.types",
    "MockBackend": "judge.backends",
    "ModelRecord": "judge.records",
    "PairwiseProtocol": "judge.protocols",
    "PointwiseProtocol": "judge.protocols",
    "ProtocolSettings": "judge.spec",
    "REGISTRY": "judge.backends",
    "ReplayBackend": "judge.backends",
    "RewardRecord": "judge.records",
    "RunData": "judge.rundata",
    "RunRecord": "judge.records",
    "RunSummary": "judge.runner",
    "Runner": "judge.runner",
    "RunnerConfig": "judge.spec",
    "Store": "judge.store",
    "StoreError": "judge.errors",
    "TokenLogprob": "judge.types",
    "Verdict": "judge.types",
    "ItemFile": "judge.items",
    "items_from_rows": "judge.items",
    "load_items": "judge.items",
    "load_judge_spec": "judge.spec",
    "load_run_data": "judge.rundata",
    "make_backend": "judge.backends",
    "make_protocol": "judge.protocols",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "REGISTRY",
    "Backend",
    "BackendError",
    "CallRecord",
    "Completion",
    "ConfigError",
    "GenerateRequest",
    "Item",
    "ItemFile",
    "ItemsError",
    "JudgeError",
    "JudgeSpec",
    "LabelRecord",
    "Message",
    "MockBackend",
    "ModelRecord",
    "PairwiseProtocol",
    "PointwiseProtocol",
    "ProtocolSettings",
    "ReplayBackend",
    "RewardRecord",
    "RunData",
    "RunRecord",
    "RunSummary",
    "Runner",
    "RunnerConfig",
    "Store",
    "StoreError",
    "TokenLogprob",
    "Verdict",
    "__version__",
    "items_from_rows",
    "load_items",
    "load_judge_spec",
    "load_run_data",
    "make_backend",
    "make_protocol",
]
