"""The curated contextual set (data/contextual/): the recorded anchor draw, every mechanical rule
over the whole set, the checker's messages on bad blocks, jumbling, and a job run on it."""
import json
import re
from collections import Counter

import pandas as pd
import pytest

from conftest import ROOT, run_job
from embcompare.contextual import curated
from embcompare.contextual.anchors import BAND_SHARES, SHARES, select_anchors, select_topup
from embcompare.contextual.tasks import TASKS, Sentence, read_tasks, surface_matches, write_tasks
from embcompare.vocab import WordNet

ANCHORS_FILE = ROOT / "data" / "contextual" / "anchors-v1.jsonl"
TOPUP_FILE = ROOT / "data" / "contextual" / "anchors-v1-topup.jsonl"


@pytest.fixture(scope="module")
def loaded():
    return curated.load_curated()


@pytest.fixture(scope="module")
def blocks():
    out = []
    for f in curated.source_files():
        out.extend(curated.parse_source(f.read_text(encoding="utf-8"), str(f)))
    return out


def _recorded(path=ANCHORS_FILE):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_anchor_list_is_the_seeded_draw():
    """The shipped anchor list is what the procedure draws from WordNet 3.0 and wordfreq."""
    main = select_anchors(WordNet(), n=1200, seed=0)
    drawn = [a.to_dict() for a in main]
    assert drawn == _recorded()
    # the polysemy top-up: 80 more nouns, verbs and adjectives with two senses or more
    topup = [a.to_dict() for a in select_topup(WordNet(), {a.anchor for a in main}, n=80, seed=0)]
    assert topup == _recorded(TOPUP_FILE)
    assert len(topup) == 80 and not {a["anchor"] for a in topup} & {a["anchor"] for a in drawn}
    assert all(a["pos"] != "r" and len(a["polysemy"]) >= 2 for a in topup)
    assert len({a["anchor"] for a in drawn}) == 1200
    by_pos = Counter(a["pos"] for a in drawn)
    assert by_pos == {p: round(1200 * s) for p, s in SHARES.items()}
    for p, k in by_pos.items():
        bands = Counter(a["band"] for a in drawn if a["pos"] == p)
        assert bands[0] == round(k * BAND_SHARES[0]) and bands[1] == round(k * BAND_SHARES[1])
    # nouns, verbs and adjectives all have another sense in another lexicographer file
    syn = WordNet().synsets
    for a in drawn:
        assert a["pos"] == "r" or a["polysemy"]
        for sid in a["polysemy"]:
            assert a["anchor"] in syn[sid].lemmas and syn[sid].lexfile.split(".")[0] != "" and sid != a["sense"]


def test_every_drawn_anchor_has_one_block_with_its_sense(blocks):
    recorded = {a["anchor"]: a for a in _recorded() + _recorded(TOPUP_FILE)}
    main = {a["anchor"] for a in _recorded()}
    topup = {a["anchor"] for a in _recorded(TOPUP_FILE)}
    written = [b.anchor for b in blocks]
    assert len(written) == len(set(written))
    assert main <= set(written) <= main | topup  # every drawn anchor; top-up anchors as written
    for b in blocks:  # a top-up anchor serves polysemy only
        assert b.anchor not in topup or set(b.skips) >= set(curated.WRITTEN) - {"polysemy"}, b.anchor
    syn = WordNet().synsets
    listed = other = 0
    for b in blocks:
        assert (b.pos, b.sense) == (recorded[b.anchor]["pos"], recorded[b.anchor]["sense"]), b.anchor
        # a polysemy sense is one the draw listed for the anchor, or (the second pass over the
        # anchors first skipped) another of its senses; never a derivation of the original's
        own = syn[b.sense]
        for _, sid, no in b.variants.get("polysemy", []):
            assert (b.anchor, sid) not in own.derivations and (b.anchor, b.sense) not in syn[sid].derivations, (b.path, no)
            if sid in recorded[b.anchor]["polysemy"]:
                listed += 1
            else:
                other += 1
    assert listed > 4 * other


def test_the_whole_set_passes_the_mechanical_checks(loaded):
    records, report = loaded
    topup = {a["anchor"] for a in _recorded(TOPUP_FILE)}
    assert report["anchors"] == 1200 + len(topup)  # the main draw and the polysemy top-up, every block
    assert {r.anchor for r in records} & topup <= {r.anchor for r in records if r.task == "polysemy"}
    per_task = Counter(r.task for r in records)
    assert set(per_task) == set(TASKS)
    assert min(per_task.values()) >= 1000, per_task
    main = {a["anchor"] for a in _recorded()}
    assert all(r.anchor in main for r in records if r.task != "polysemy")
    for r in records:
        assert r.generator == "curated" and r.provenance["version"] == curated.VERSION
        assert 1 <= len(r.variants) <= curated.N_VARIANTS
        assert r.task != "jumbling" or len(r.variants) == curated.N_VARIANTS
        for s in (r.original, *r.variants):
            assert surface_matches(s.text[s.span[0]:s.span[1]], r.anchor)
            assert "[" not in s.text and "]" not in s.text
        texts = [r.original.text, *(v.text for v in r.variants)]
        assert len(set(texts)) == len(texts)
        if r.task in ("synonym", "antonym"):
            assert len(r.pairs) == len(r.variants)
        if r.task == "polysemy":
            assert len(set(r.variant_senses)) == len(r.variants) and r.sense not in r.variant_senses
    originals = {}
    for r in records:
        originals.setdefault(r.anchor, r.original.text)
        assert originals[r.anchor] == r.original.text  # one original per anchor, shared by its tasks
    assert len(set(originals.values())) == len(originals)
    assert sum(report["records"].values()) == len(records)


def test_mechanical_rules_hold_on_the_records(loaded):
    """The task rules checked again from the records, independently of the checker's code paths."""
    from embcompare.contextual.acceptance import negators

    records, _ = loaded
    for r in records:
        o = r.original.text
        for i, v in enumerate(r.variants):
            t = v.text
            if r.task == "negation":
                assert negators(t) - negators(o) == 1, t
            elif r.task == "question":
                assert t.endswith("?"), t
            elif r.task == "exclamation":
                assert t.endswith("!") and t[:-1] != o[:-1], t
            elif r.task in ("synonym", "antonym"):
                old, new = r.pairs[i]
                assert re.search(rf"(?<![A-Za-z]){re.escape(new)}(?![A-Za-z])", t, re.I) and o != t
                assert re.search(rf"(?<![A-Za-z]){re.escape(old)}(?![A-Za-z])", o, re.I)


def test_jumbling_is_a_permutation_moving_the_anchor(loaded):
    records, _ = loaded
    for r in (r for r in records if r.task == "jumbling"):
        o = r.original.text
        toks = sorted(w.lower() for w in o[:-1].split())
        a_idx = len(o[: r.original.span[0]].split())
        for v in r.variants:
            assert sorted(w.lower() for w in v.text[:-1].split()) == toks and v.text[-1] == o[-1]
            assert len(v.text[: v.span[0]].split()) != a_idx  # the anchor moved
            assert v.text[v.span[0]:v.span[1]].lower() == o[r.original.span[0]:r.original.span[1]].lower()
            assert v.text[0].isupper() or not v.text[0].isalpha()  # a sentence's first word, capitalised


def test_jumble_keeps_contractions_whole_and_moves_the_capital():
    s = curated.marked("The old baker's apprentice didn't sell the [bread] before noon today.")
    for v in curated.jumble(s, "k"):
        words = [w.lower() for w in v.text.rstrip(".").split()]
        assert "baker's" in words and "didn't" in words
        assert v.text[v.span[0]:v.span[1]].lower() == "bread"
        assert v.text[0].isupper() and "The" not in v.text.split()[1:]  # 'The' lost its capital
    names = curated.marked("NASA and McDonald quietly sold the [bread] at the old market.")
    for v in curated.jumble(names, "k"):
        assert {"NASA", "McDonald"} <= set(v.text.rstrip(".").split())


BLOCK = """== bank | n | 09213565-n
original: From the grassy [bank], the old fishermen slowly pulled the heavy nets out of the cold river.
synonym: pulled -> hauled | From the grassy [bank], the old fishermen slowly hauled the heavy nets out of the cold river.
antonym: heavy -> light | From the grassy [bank], the old fishermen slowly pulled the light nets out of the cold river.
negation: From the grassy [bank], the old fishermen did not pull the heavy nets out of the cold river slowly.
question: Did the old fishermen slowly pull the heavy nets out of the cold river from the grassy [bank]?
exclamation: How slowly the old fishermen pulled the heavy nets out of the cold river from the grassy [bank]!
active_passive: From the grassy [bank], the heavy nets were slowly pulled out of the cold river by the old fishermen.
paraphrase: Standing on the grassy [bank], the elderly anglers hauled their weighty nets from the chilly river without hurry.
polysemy: 08420278-n | She deposited her first paycheck at the [bank] on Friday morning.
"""


def _problems(text):
    return [p for b in curated.parse_source(text, "x.txt") for p in curated.check_block(b)]


def test_a_good_block_has_no_problem():
    assert _problems(BLOCK) == []
    recs = curated.records_of(curated.parse_source(BLOCK, "x.txt")[0])
    assert sorted(r.task for r in recs) == sorted(TASKS)


def test_a_possessive_is_not_a_passive_and_punctuation_counts_in_a_swap():
    bad = BLOCK.replace("active_passive: From the grassy [bank], the heavy nets were slowly pulled out of the cold river by the old fishermen.",
                        "active_passive: The fishermen's heavy nets slowly came in from the grassy [bank] at dawn.")
    assert any("not a passive" in p for p in _problems(bad))
    for var in ["From the grassy [bank], the old fishermen slowly hauled the heavy nets out of the cold river",
                "From the grassy [bank] the old fishermen slowly hauled the heavy nets out of the cold river!"]:
        bad = BLOCK.replace("synonym: pulled -> hauled | From the grassy [bank], the old fishermen slowly hauled the heavy nets out of the cold river.",
                            f"synonym: pulled -> hauled | {var}")
        assert any("punctuation" in p for p in _problems(bad)), var


def test_records_with_provenance_hash_and_compare_on_their_sentences():
    from dataclasses import replace

    r = curated.records_of(curated.parse_source(BLOCK, "x.txt")[0])[0]
    assert hash(r) == hash(replace(r, provenance={"review": "accepted"}))
    assert r == replace(r, provenance=None)


@pytest.mark.parametrize("old, new, words", [
    ("synonym: pulled -> hauled | From the grassy [bank], the old fishermen slowly hauled",
     "synonym: pulled -> hauled | From the grassy [bank], the young fishermen slowly hauled", ["line 3", "more than the named word"]),
    ("synonym: pulled -> hauled", "synonym: pulled -> dragged", ["line 3", "names 'pulled' -> 'dragged'"]),
    ("did not pull the heavy nets out of the cold river slowly.", "did not pull the heavy nets out of the cold river, not slowly.",
     ["line 5", "adds 2 negators"]),
    ("from the grassy [bank]?", "from the grassy [bank].", ["line 6", "end in '?'"]),
    ("How slowly the old fishermen pulled the heavy nets out of the cold river from the grassy [bank]!",
     "From the grassy [bank], the old fishermen slowly pulled the heavy nets out of the cold river!",
     ["line 7", "only the punctuation"]),
    ("polysemy: 08420278-n", "polysemy: 09213565-n", ["line 10", "the original's own sense"]),
    ("polysemy: 08420278-n", "polysemy: 02084071-n", ["line 10", "not a sense of 'bank'"]),
    ("at the [bank] on Friday", "at the [banker] on Friday", ["line 10", "not a form of anchor 'bank'"]),
    ("at the [bank] on Friday", "at the bank on Friday", ["line 10", "exactly one [anchor] mark"]),
    ("From the grassy [bank], the old fishermen slowly pulled the heavy nets out of the cold river.\n",
     "The [bank] was green.\n", ["line 1", "original has 4 words"]),
    ("paraphrase: Standing on the grassy [bank], the elderly anglers hauled their weighty nets from the chilly river without hurry.\n",
     "", ["no paraphrase variant and no 'skip paraphrase: reason'"]),
])
def test_the_checker_names_line_and_problem(old, new, words):
    bad = BLOCK.replace(old, new, 1)
    assert bad != BLOCK
    problems = _problems(bad)
    assert problems, bad
    text = " ".join(problems)
    assert "x.txt" in text and "(bank)" in text
    for w in words:
        assert w in text, (w, problems)


def test_a_skip_line_serves_instead_of_variants():
    text = BLOCK.replace("exclamation: How slowly the old fishermen pulled the heavy nets out of the cold river from the grassy [bank]!",
                         "skip exclamation: nothing to exclaim")
    assert _problems(text) == []
    recs = curated.records_of(curated.parse_source(text, "x.txt")[0])
    assert "exclamation" not in {r.task for r in recs}


def test_a_bad_source_stops_the_load_naming_the_file(tmp_path):
    (tmp_path / "a.txt").write_text(BLOCK.replace("[bank]?", "[bank]."))
    with pytest.raises(curated.CuratedFormatError, match=r"a.txt, line 6 \(bank\): question"):
        curated.load_curated(tmp_path)


def test_records_round_trip_with_pairs_and_provenance(tmp_path):
    recs = curated.records_of(curated.parse_source(BLOCK, "x.txt")[0], {("bank", "synonym"): "accepted"})
    syn = next(r for r in recs if r.task == "synonym")
    assert syn.pairs == (("pulled", "hauled"),) and syn.provenance["review"] == "accepted"
    path = str(tmp_path / "t.jsonl")
    write_tasks(path, recs)
    assert read_tasks(path) == recs


def test_checker_command_exits_nonzero_on_problems(tmp_path):
    import subprocess
    import sys

    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(BLOCK)
    bad.write_text(BLOCK.replace("[bank]?", "[bank]."))
    ok = subprocess.run([sys.executable, "-m", "embcompare.contextual.curated", "check", str(good)],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "0 problems" in ok.stdout
    no = subprocess.run([sys.executable, "-m", "embcompare.contextual.curated", "check", str(bad)],
                        capture_output=True, text=True, cwd=ROOT)
    assert no.returncode == 1 and "line 6" in no.stdout


def test_job_runs_on_a_seeded_sample_of_the_curated_set(tmp_path, loaded):
    out = tmp_path / "out"
    run_job("contextual.py", "models=[glove_6b_50d]", "contextual.anchors=5", f"out_dir={out}")
    ctx = out / "contextual"
    records = read_tasks(str(ctx / "tasks.jsonl"))
    assert len({r.anchor for r in records}) == 5 and {r.generator for r in records} == {"curated"}
    full = {(r.anchor, r.task): r for r in loaded[0]}
    for r in records:
        assert full[(r.anchor, r.task)] == r  # the shipped records, unchanged
    meta = json.loads((ctx / "tasks.json").read_text())
    assert meta["settings"]["generator"] == "curated" and "gate" not in meta["settings"]
    assert meta["report"]["provenance"]["version"] == curated.VERSION
    res = pd.read_parquet(ctx / "results.parquet")
    assert set(res.task) == {r.task for r in records}


def test_review_sample_packet_and_tally():
    from embcompare.contextual import review

    recs = curated.records_of(curated.parse_source(BLOCK, "x.txt")[0])
    picked = review.sample(recs, 1, "s")
    assert len(picked) == len(TASKS) and picked == review.sample(recs, 1, "s")
    text = review.packet(picked, lambda sid: f"gloss of {sid}")
    assert "### synonym-001 | task: synonym | anchor: bank (noun)" in text
    assert "v1 (pulled -> hauled): From the grassy [bank]," in text
    assert "v1 (sense: gloss of 08420278-n)" in text
    lines = [f"{rid}\t{which}\taccept\t" for rid, r in picked.items()
             for which in ["original"] + [f"v{k}" for k in range(1, len(r.variants) + 1)]]
    syn_v1 = lines.index("synonym-001\tv1\taccept\t")
    lines[syn_v1] = "synonym-001\tv1\treject\twrong sense"
    del lines[lines.index("negation-001\tv1\taccept\t")]
    t = review.tally(picked, review.read_verdicts("\n".join(lines)))
    assert t["synonym"] == {"records": 1, "variants": 1, "variants_accepted": 0, "records_accepted": 0,
                            "originals_rejected": 0, "missing": 0, "share_variants": 0.0, "share_records": 0.0}
    assert t["negation"]["missing"] == 1 and t["negation"]["records_accepted"] == 0
    assert t["jumbling"]["share_variants"] == 1.0
    with pytest.raises(ValueError, match="line 2"):
        review.read_verdicts("a\toriginal\taccept\nb\tv1\tmaybe")


def test_report_shows_the_data_sets_provenance_and_counts():
    from embcompare.report.sections import data_set_item

    meta = {"sha256": "ab" * 32, "settings": {"generator": "curated"},
            "report": {"provenance": curated.PROVENANCE, "records": {"synonym": 1187, "polysemy": 1043},
                       "sentences": {"synonym": 4748, "polysemy": 3201}, "skip_counts": {"synonym": 13, "polysemy": 157}}}
    item = data_set_item(meta)
    assert "version 1" in item.caption and "CC BY 4.0" in item.caption and "abababababab" in item.caption
    for cell in ("synonym", "1187", "4748", "13", "polysemy", "1043", "157"):
        assert f">{cell}<" in item.table.replace(",", ""), cell
    assert data_set_item({"report": {}}) is None
