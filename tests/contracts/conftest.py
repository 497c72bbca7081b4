"""Contract tests against the real trainer libraries (TRL, verl), run by `make contracts` in
their own environment (.venv-contracts: the libraries pull in PyTorch, too heavy for the main
one). Without the libraries every test here is skipped, with the reason."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def tiny_tokenizer(texts: list[str]):  # type: ignore[no-untyped-def]
    """A word-level tokenizer built here from ``texts`` (nothing is downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in texts for w in t.split()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]", *words])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    )
