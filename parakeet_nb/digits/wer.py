"""Word error rate: edit distance over words, per clip and over a set.
"""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, deletions and
    insertions each cost 1)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """``(edits, reference words)`` of one utterance; words are split on whitespace."""
    ref_words, hyp_words = ref.split(), hyp.split()
    return edit_distance(ref_words, hyp_words), len(ref_words)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate: total edit distance over total reference words.

    Raises ``ValueError`` when the lists differ in length or the references hold no words
    (the rate is then undefined).
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = words = 0
    for ref, hyp in zip(refs, hyps):
        e, n = word_errors(ref, hyp)
        edits += e
        words += n
    if words == 0:
        raise ValueError("the references hold no words: the word error rate is undefined")
    return edits / words
