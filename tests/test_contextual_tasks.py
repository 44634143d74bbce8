"""The task data set's JSONL format: round trip, and a malformed record named by file and line."""
import json

import pytest

from embcompare.contextual.tasks import (TASKS, Sentence, TaskFormatError, TaskRecord, read_tasks,
                                         surface_matches, write_tasks)


def _records():
    return [
        TaskRecord("bank", "n", "09213565-n", "negation", Sentence("he sat on the bank", (14, 18)),
                   (Sentence("he did not sit on the bank", (22, 26)),), "rules", "negation/do-support"),
        TaskRecord("run", "v", "01926311-v", "polysemy", Sentence("Ran to the store", (0, 3)),
                   (Sentence("she runs a company", (4, 8)), Sentence("the colours running", (12, 19))),
                   "llm:smollm2", "", ("02443849-v", "00407848-v")),
    ]


def test_round_trip(tmp_path):
    path = str(tmp_path / "sub" / "tasks.jsonl")
    write_tasks(path, _records())
    assert read_tasks(path) == _records()
    lines = (tmp_path / "sub" / "tasks.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["original"] == {"text": "he sat on the bank", "span": [14, 18]}
    assert first["task"] in TASKS and first["generator"] == "rules"


@pytest.mark.parametrize("surface, lemma", [
    ("Banks", "bank"), ("ran", "run"), ("running", "run"), ("mice", "mouse"), ("better", "good"),
    ("tried", "try"), ("making", "make"), ("went", "go"), ("is", "be")])
def test_inflected_surface_matches(surface, lemma):
    assert surface_matches(surface, lemma)


@pytest.mark.parametrize("surface, lemma", [
    ("cat", "dog"), ("car", "cat"), ("ban", "bank"), ("bang", "bank"),
    # a prefix is not a form: the old check took each of these for the anchor
    ("artist", "art"), ("us", "use"), ("tree", "try"), ("firm", "fire"), ("Artists", "art"), ("useful", "use"),
    ("banker", "bank"), ("trying", "tree")])
def test_other_word_does_not_match(surface, lemma):
    assert not surface_matches(surface, lemma)


def test_unknown_word_matches_its_regular_forms_only():
    assert surface_matches("glorps", "glorp") and surface_matches("Glorped", "glorp")
    assert not surface_matches("glorpish", "glorp")


def test_read_tasks_refuses_a_prefix_span(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(_line(anchor="art", original={"text": "the artist painted", "span": [4, 10]}) + "\n")
    with pytest.raises(TaskFormatError) as e:
        read_tasks(str(path))
    assert "line 1" in str(e.value) and "'artist'" in str(e.value) and "'art'" in str(e.value)


def _line(**change):
    d = {"anchor": "bank", "pos": "n", "sense": "09213565-n", "task": "negation",
         "original": {"text": "he sat on the bank", "span": [14, 18]},
         "variants": [{"text": "he did not sit on the bank", "span": [22, 26]}], "generator": "rules"}
    d.update(change)
    return json.dumps(d)


@pytest.mark.parametrize("bad, words", [
    ("{not json", ["line 2"]),
    (_line(original={"text": "he sat on the bank", "span": [14, 40]}), ["line 2", "out of range"]),
    (_line(original={"text": "he sat on the bank", "span": [3, 6]}), ["line 2", "'sat'", "bank"]),
    (_line(variants=[{"text": "he did not sit on the bank", "span": [0, 2]}]), ["variants[0]", "'he'"]),
    (_line(task="sarcasm"), ["line 2", "sarcasm", "polysemy"]),
    (_line(pos="x"), ["pos", "'x'"]),
    (_line(variants=[]), ["variants", "non-empty"]),
    (_line(colour="red"), ["unknown keys", "colour"]),
    (_line(variant_senses=["a", "b"]), ["2 variant_senses for 1 variants"]),
])
def test_malformed_record_names_file_and_line(tmp_path, bad, words):
    path = tmp_path / "tasks.jsonl"
    path.write_text(_line() + "\n" + bad + "\n")
    with pytest.raises(TaskFormatError) as e:
        read_tasks(str(path))
    msg = str(e.value)
    assert str(path) in msg
    for w in words:
        assert w in msg


def test_acceptance_counts():
    from embcompare.contextual.acceptance import acceptance, is_exclamative, is_question, negators, rare_new_words

    assert negators("he didn't go and never will") == 2 and negators("they did not feel no loyalty") == 2
    assert negators("he seldom came") == 1 and negators("the note was read") == 0
    assert is_exclamative("What a long night it was!") and is_exclamative("how quickly he ran!")
    assert not is_exclamative("wow, it was long!") and not is_exclamative("What a night it was")
    assert is_question("Is he a good doctor?") and not is_question("'s he a good doctor?")
    assert rare_new_words("the pupils learned", "the educatees learned") == ["educatees"]
    assert rare_new_words("the pupils learned", "the students learned") == []
    recs = [TaskRecord("night", "n", "1-n", "exclamation", Sentence("it was a long night", (14, 19)),
                       (Sentence("what a long night it was!", (12, 17)), Sentence("it was a long night!", (14, 19))),
                       "rules"),
            TaskRecord("go", "v", "1-v", "negation", Sentence("he went home", (3, 7)),
                       (Sentence("he did not go home", (11, 13)), Sentence("he didn't not go home", (14, 16))), "rules")]
    acc = acceptance(recs)
    assert acc["exclamation_real_exclamative"] == {"n": 1, "count": 1, "share": 1.0}
    assert acc["exclamation_bare_mark_variants"]["count"] == 1
    assert acc["negation_one_negator"] == {"n": 2, "count": 1, "share": 0.5}
    assert acc["spans_not_a_form"]["count"] == 0 and acc["synonym_rare_word"]["n"] == 0
