"""Questions, the candidate space and per-method answers (columns, one entry per question)."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Sequence

import numpy as np

PAIR_METHODS = ("3CosAdd", "3CosMul", "PairDistance")
SET_METHODS = ("3CosAvg", "LRCos")
METHODS = PAIR_METHODS + SET_METHODS
EXCLUSION_POLICY = "a, b and every listed alternative of a' are not candidates (set methods: b)"
OOV_POLICY = "a question with a, b, every a' alternative or every answer missing is OOV, left out of accuracy"


@dataclass
class Question:
    a: str | None           # None for set methods
    a_prime: list[str]      # alternatives of a' (empty for set methods)
    b: str
    answers: list[str]      # alternatives of b'


@dataclass
class Answers:
    """One method's answers to a list of questions. ``predicted`` is a candidate index (-1 for an
    OOV question), ``rank`` the rank of the best-scored listed answer (1 = hit; 0 when OOV)."""

    method: str
    questions: list[Question]
    predicted: np.ndarray
    rank: np.ndarray
    correct: np.ndarray
    oov: np.ndarray
    words: Sequence[str]

    def __len__(self) -> int:
        return len(self.questions)

    def predicted_words(self) -> list[str | None]:
        return [self.words[p] if p >= 0 else None for p in self.predicted.tolist()]

    def ranks(self) -> list[int | None]:
        return [None if o else r for r, o in zip(self.rank.tolist(), self.oov.tolist())]


@dataclass
class Space:
    """The candidate vocabulary: unit vectors (float32, on the device) and a word index."""

    words: list[str]
    E: object
    xp: ModuleType = np
    index: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_vectors(cls, words: Sequence[str], X: np.ndarray, xp: ModuleType = np) -> "Space":
        """Unit rows of ``X``; a zero vector is left out (it is no embedding), as in similarity."""
        from ..similarity.tiles import normalize

        E, zero = normalize(X, words)
        return cls([w for w, z in zip(words, zero.tolist()) if not z], xp.asarray(E), xp)

    def ids(self, words: Sequence[str]) -> list[int]:
        return [self.index[w] for w in words if w in self.index]


def pair_questions(pairs: Sequence[tuple[str, Sequence[str]]]) -> list[Question]:
    """Every ordered pair of distinct pairs of a category (BATS)."""
    return [Question(a, list(ap), b, list(bp))
            for i, (a, ap) in enumerate(pairs) for j, (b, bp) in enumerate(pairs) if i != j]


def summarize(answers: Answers) -> dict:
    n = len(answers)
    n_ans = int((~answers.oov).sum())
    correct = int(answers.correct.sum())
    return {"n_questions": n, "n_answered": n_ans, "n_correct": correct,
            "accuracy": correct / n_ans if n_ans else float("nan"), "oov": n - n_ans}
