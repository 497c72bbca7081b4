"""The judge pipeline: backends, protocols, parsers, the async runner and the DuckDB store."""

__version__ = "0.1.0"

from judge.backends import Backend, MockBackend, ReplayBackend, make_backend
from judge.errors import BackendError, ConfigError, ItemsError, JudgeError, StoreError
from judge.items import Item, items_from_rows, load_items
from judge.protocols import JudgeConfig, PairwiseProtocol, PointwiseProtocol, make_protocol
from judge.runner import Runner, RunnerConfig, RunSummary
from judge.store import Store
from judge.types import CallRecord, Completion, GenerateRequest, Message, TokenLogprob, Verdict

__all__ = [
    "Backend",
    "BackendError",
    "CallRecord",
    "Completion",
    "ConfigError",
    "GenerateRequest",
    "Item",
    "ItemsError",
    "JudgeConfig",
    "JudgeError",
    "Message",
    "MockBackend",
    "PairwiseProtocol",
    "PointwiseProtocol",
    "ReplayBackend",
    "RunSummary",
    "Runner",
    "RunnerConfig",
    "Store",
    "StoreError",
    "TokenLogprob",
    "Verdict",
    "items_from_rows",
    "load_items",
    "make_backend",
    "make_protocol",
]
