"""Reliability matrices: long-form labels (item, annotator, value) → annotators × items."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from human_labels.errors import AgreementError


def _flat(values: Any, kind: pa.DataType) -> pa.Array:
    """One contiguous Arrow array (chunks would be dictionary-encoded separately)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks().cast(kind)
    if isinstance(values, pa.Array):
        return values.cast(kind)
    return pa.array(values, type=kind)


def reliability_matrix(
    item_ids: Any, annotators: Any, values: Any
) -> tuple[NDArray[np.float64], list[str], list[str]]:
    """Pivot long-form numeric labels into an annotators × items matrix (``NaN`` = missing).

    Accepts Arrow arrays or anything Arrow can convert; factorizes ids with Arrow's dictionary
    encoding, so millions of labels pivot in well under a second. Returns the matrix, the
    annotator names (rows) and the item ids (columns).

    >>> m, ann, items = reliability_matrix(["i1", "i2", "i1"], ["a", "a", "b"], [1.0, 2.0, 3.0])
    >>> ann, items, m.tolist()
    (['a', 'b'], ['i1', 'i2'], [[1.0, 2.0], [3.0, nan]])
    """
    items = pc.dictionary_encode(_flat(item_ids, pa.string()))
    coders = pc.dictionary_encode(_flat(annotators, pa.string()))
    value_array = _flat(values, pa.float64())
    if value_array.null_count:
        raise AgreementError("some labels have no numeric value")
    item_names = items.dictionary.to_pylist()
    coder_names = coders.dictionary.to_pylist()
    # Sort names so the layout does not depend on row order (Arrow sorts strings natively).
    item_order = pc.sort_indices(items.dictionary).to_numpy().astype(np.int64)
    coder_order = pc.sort_indices(coders.dictionary).to_numpy().astype(np.int64)
    item_rank = np.empty_like(item_order)
    item_rank[item_order] = np.arange(item_order.size)
    coder_rank = np.empty_like(coder_order)
    coder_rank[coder_order] = np.arange(coder_order.size)
    rows = coder_rank[coders.indices.to_numpy(zero_copy_only=False)]
    cols = item_rank[items.indices.to_numpy(zero_copy_only=False)]
    matrix = np.full((len(coder_names), len(item_names)), np.nan)
    flat = rows.astype(np.int64) * len(item_names) + cols
    if flat.size and np.bincount(flat).max() > 1:
        raise AgreementError(
            "an annotator labels the same item twice; deduplicate the labels first"
        )
    matrix[rows, cols] = value_array.to_numpy(zero_copy_only=False)
    return (
        matrix,
        [coder_names[i] for i in coder_order],
        [item_names[i] for i in item_order],
    )
