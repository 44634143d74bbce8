"""The analogy stage for one model: every section of every data set, every method, from one
reading of the model's vectors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .methods import answer_section
from .space import EXCLUSION_POLICY, OOV_POLICY, Answers, Question, Space, pair_questions, summarize

BUILTIN = ("bats", "google")  # data sets known by name; any other is NAME:/path/to/bats-layout-folder


@dataclass
class Section:
    dataset: str
    category: str
    questions: list[Question]                     # pair-method questions
    set_pairs: list[tuple[str, list[str]]]        # set-method pairs (b, alternatives of b')


def parse_entry(entry: str) -> tuple[str, str | None]:
    """(name, folder or None) of a data set entry: ``bats``, ``google`` or ``NAME:/path``."""
    name, sep, path = str(entry).partition(":")
    if sep and not path:
        raise ValueError(f"analogy data set '{entry}': no folder after ':'; use NAME:/path/to/folder")
    if not sep and name not in BUILTIN:
        raise ValueError(f"unknown analogy data set '{entry}'; known: {', '.join(BUILTIN)}, or NAME:/path/to/folder "
                         f"(a folder of BATS-layout files)")
    return name, (path or None)


def load_sections(entries: Sequence[str]) -> list[Section]:
    """Every section of the data sets ``entries`` (see :func:`parse_entry`), in order. A
    malformed file raises DatasetFormatError naming the file and line."""
    from ..datasets import load_bats, load_google, norm

    out: list[Section] = []
    for entry in entries:
        name, path = parse_entry(entry)
        if name == "google" and path is None:
            for sec, items in load_google():
                qs = [Question(a, [ap], b, [bp]) for a, ap, b, bp in items]
                set_pairs = [(a, list(ap)) for a, ap in sorted({(a, (ap,)) for a, ap, _, _ in items})]
                out.append(Section(name, sec, qs, set_pairs))
            continue
        for c in load_bats(path) if path else load_bats():
            items = [(norm(a), [norm(x) for x in alts]) for a, alts in c.pairs]
            out.append(Section(name, c.label, pair_questions(items), items))
    return out


def answer_all(space: Space, sections: Sequence[Section], methods: Sequence[str], eps: float = 1e-3,
               n_random_negatives: int = 50, seed: int = 0) -> Iterator[tuple[Section, dict[str, Answers]]]:
    """(section, method -> answers) for every section."""
    for sec in sections:
        yield sec, answer_section(space, sec.questions, sec.set_pairs, methods, eps, n_random_negatives, seed)


def result_row(model: str, sec: Section, ans: Answers) -> dict:
    return {"model": model, "dataset": sec.dataset, "category": sec.category, "method": ans.method,
            **summarize(ans), "exclusion_policy": EXCLUSION_POLICY, "oov_policy": OOV_POLICY}


def evaluate(words: Sequence[str], X: np.ndarray, datasets: Sequence[str], methods: Sequence[str],
             backend: str = "auto", eps: float = 1e-3, n_random_negatives: int = 50, seed: int = 0,
             model: str = "") -> list[dict]:
    """One result row (the output contract's analogy/results.parquet) per data set section and
    method, with ``words`` and their vectors ``X`` as the candidates."""
    from ..backend import array_namespace

    space = Space.from_vectors(list(words), X, array_namespace(backend))
    return [result_row(model, sec, ans[m]) for sec, ans in answer_all(space, load_sections(datasets), methods, eps,
                                                                       n_random_negatives, seed) for m in methods]
