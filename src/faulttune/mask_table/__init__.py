"""Training examples with their masks: the rows of ``results/{run}/masks/{kind}_{source}.parquet``.

Schema (:data:`MASKS_SCHEMA`, docs/CONTRACTS.md "Training examples"): one row per example,

    id, task_id, kind            str
    chosen_ids                   list<int32>   chat-templated prompt + response
    chosen_start                 int32         index of the first response token
    chosen_mask                  list<int8>    per token of chosen_ids, 0 on the prompt
    rejected_ids / _start / _mask              same for the rejected response, or null
    first_diff                   int32 or null (rows marked by a first-difference mask kind)

``{kind}`` is an examples kind of the registry (:class:`faulttune.methods.Examples`, listed by
``faulttune methods``): it says what each input record becomes (a solution row, a pair row marked
by two mask kinds, a bug-fix row) and whether it covers every task of the training table.
:mod:`.encoding` tokenises a training sequence, :mod:`.rows` builds the rows, :mod:`.files`
writes and reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faulttune import methods
from faulttune.mask_table.encoding import (
    REJECT_REASONS,
    Encoder,
    RowRejected,
    encode_training,
    end_of_turn_id,
    normalise_code,
    template_index,
)
from faulttune.mask_table.files import MASKS_SCHEMA, examples_kind, read_masks, write_masks
from faulttune.mask_table.rows import Traced, build_examples, plain_row, read_pair
from faulttune.masks import Encoded

__all__ = [
    "MASKS_SCHEMA", "REJECT_REASONS", "Encoded", "Encoder", "RowRejected", "Traced",
    "build_examples", "build_mask_rows", "encode_training", "end_of_turn_id", "examples_kind",
    "normalise_code", "plain_row", "read_masks", "read_pair", "template_index", "write_masks",
]


def build_mask_rows(
    records: Sequence[dict[str, Any]], tokenizer: Any, kind: str, **options: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`build_examples` of the registry's examples kind named ``kind``."""
    return build_examples(methods.examples(kind), records, tokenizer, **options)
