"""The judge pipeline: backends, protocols, parsers, the async runner and the DuckDB store."""

__version__ = "0.1.0"

from judge.backends import REGISTRY, Backend, MockBackend, ReplayBackend, make_backend
from judge.errors import BackendError, ConfigError, ItemsError, JudgeError, StoreError
from judge.items import Item, items_from_rows, load_items
from judge.protocols import PairwiseProtocol, PointwiseProtocol, make_protocol
from judge.records import LabelRecord, ModelRecord, RewardRecord, RunRecord
from judge.rundata import RunData, load_run_data
from judge.runner import Runner, RunSummary
from judge.spec import JudgeSpec, ProtocolSettings, RunnerConfig, load_judge_spec
from judge.store import Store
from judge.types import CallRecord, Completion, GenerateRequest, Message, TokenLogprob, Verdict

__all__ = [
    "REGISTRY",
    "Backend",
    "BackendError",
    "CallRecord",
    "Completion",
    "ConfigError",
    "GenerateRequest",
    "Item",
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
    "items_from_rows",
    "load_items",
    "load_judge_spec",
    "load_run_data",
    "make_backend",
    "make_protocol",
]
