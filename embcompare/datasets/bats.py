"""BATS 3.0 (Gladkova et al. 2016): 40 categories of word pairs, ``a<TAB>b1/b2/...`` per line.

Any folder of such TSV files (category files anywhere below it, named ``<ID> [<name>].txt``)
works as a custom data set.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BATS_DIR = Path(__file__).resolve().parents[2] / "data" / "BATS_3.0"
_NAME = re.compile(r"^(?P<id>\S+)\s*\[(?P<name>.+)\]$")


class DatasetFormatError(ValueError):
    pass


@dataclass(frozen=True)
class Category:
    id: str            # e.g. "E01"
    name: str          # e.g. "country - capital"
    pairs: tuple[tuple[str, tuple[str, ...]], ...]  # (a, alternatives of a')

    @property
    def label(self) -> str:
        return f"{self.id} [{self.name}]"


def load_bats(folder: str | os.PathLike = DEFAULT_BATS_DIR) -> list[Category]:
    """Categories sorted by id. A malformed line raises DatasetFormatError with file and line."""
    folder = Path(folder)
    files = sorted(folder.rglob("*.txt"))
    if not files:
        raise FileNotFoundError(f"{folder}: no BATS category files (*.txt)")
    cats = []
    for f in files:
        m = _NAME.match(f.stem)
        cid, name = (m["id"], m["name"]) if m else (f.stem, f.stem)
        pairs = []
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.strip().split("\t")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                raise DatasetFormatError(f"{f}:{lineno}: expected 'word<TAB>answer[/answer...]', got {line!r}")
            alts = tuple(dict.fromkeys(a.strip() for a in parts[1].split("/") if a.strip()))
            pairs.append((parts[0].strip(), alts))
        cats.append(Category(cid, name, tuple(pairs)))
    return sorted(cats, key=lambda c: c.id)
