"""Word count: the example ``runner demo`` runs.

Workers import it with ``runner worker --include examples.wordcount``; clients import it
(or set ``RUNNER_INCLUDE``) to validate params before submitting.
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel, Field

from runner import app, template

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


class CountParams(BaseModel):
    lowercase: bool = Field(True, description="Count 'The' and 'the' as one word.")
    min_length: int = Field(1, ge=1, description="Ignore words shorter than this.")


@app("wordcount", params=CountParams)
def wordcount(piece: str, ctx) -> dict[str, int]:
    """Counts the words of one piece of text."""
    text = piece.lower() if ctx.params.lowercase else piece
    return dict(Counter(w for w in WORD.findall(text) if len(w) >= ctx.params.min_length))


template(
    "wordcount", version="1.0.0", partitioner="lines", app="wordcount", assembler="merge_counts",
    params={"partitioner": {"lines_per_piece": 1000}}, task_timeout=60, job_timeout=600,
    description="Word frequencies of a text, N lines per piece.",
)
