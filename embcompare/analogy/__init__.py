"""Word analogies a : a' :: b : ? with 3CosAdd, 3CosMul, PairDistance (pair methods) and 3CosAvg,
LRCos (set methods), as defined in docs/definitions.md ("Analogies").

Each section of a data set (a BATS category, a Google section) is scored from one similarity
table S = U @ E.T of its distinct words against every candidate (methods.py); one fused pass per
question reads its scores once for the prediction and the answer's rank (sweep.py: Numba on the
CPU, the array namespace, e.g. CuPy, elsewhere).

Policies, written into every result row: the example a' is the first alternative the model has;
a, b and every alternative of a' are never candidates (set methods: b is not); a hit is any listed
answer at rank 1; a question with a word the model lacks (a, b, every a', every answer) is OOV,
reported, and left out of the accuracy, the same way for every method.
"""
from .evaluate import Section, answer_all, evaluate, load_sections, parse_entry, result_row
from .lrcos import logistic_regression
from .methods import Table, answer_pairs, answer_section, answer_sets
from .space import (EXCLUSION_POLICY, METHODS, OOV_POLICY, PAIR_METHODS, SET_METHODS, Answers, Question, Space,
                    pair_questions, summarize)

__all__ = ["EXCLUSION_POLICY", "METHODS", "OOV_POLICY", "PAIR_METHODS", "SET_METHODS", "Answers", "Question",
           "Section", "Space", "Table", "answer_all", "evaluate", "load_sections", "parse_entry", "result_row", "answer_pairs", "answer_section", "answer_sets", "logistic_regression",
           "pair_questions", "summarize"]
