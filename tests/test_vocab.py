from pathlib import Path

import pytest

from embcompare.vocab import VocabFilter, WordNet, WordNetNotFound, find_wordnet, load_words, words_sha256


@pytest.fixture(scope="module")
def wordnet():
    return WordNet()


def test_default_vocabulary_is_the_studys_77503_words():
    words = load_words()
    assert len(words) == 77503
    assert words == sorted(set(words))
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words)
    assert {"dog", "run", "quickly", "blue"} <= set(words)
    assert "ice cream" not in words and "ice_cream" not in words


def test_filters_change_the_list():
    nouns = load_words(filt=VocabFilter(pos=("n",)))
    assert 0 < len(nouns) < 77503 and "dog" in nouns and "quickly" not in nouns
    multi = load_words(filt=VocabFilter(multiword=True))
    assert "ice cream" in multi and len(multi) > 77503
    long_words = load_words(filt=VocabFilter(min_length=5))
    assert min(map(len, long_words)) == 5
    assert load_words(filt=VocabFilter(max_words=100)) == load_words()[:100]
    with pytest.raises(ValueError, match="unknown part of speech"):
        load_words(filt=VocabFilter(pos=("x",)))


def test_sha256_tracks_the_word_list():
    a = words_sha256(["a", "b"])
    assert a == words_sha256(["a", "b"])
    assert a != words_sha256(["b", "a"]) and a != words_sha256(["ab"])


def test_missing_wordnet_says_where_it_looked_and_how_to_install(tmp_path: Path):
    with pytest.raises(WordNetNotFound) as e:
        find_wordnet(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value)
    assert "apt-get install -y wordnet-base" in str(e.value)


def test_nltk_layout_is_found(tmp_path: Path, monkeypatch):
    """An NLTK corpora/wordnet folder holds the same files; NLTK_DATA points at it."""
    src = find_wordnet()
    dst = tmp_path / "corpora" / "wordnet"
    dst.mkdir(parents=True)
    for p in src.glob("*.*"):
        if p.name.startswith(("index.", "data.")):
            (dst / p.name).symlink_to(p)
    monkeypatch.setenv("NLTK_DATA", str(tmp_path))
    monkeypatch.setattr("embcompare.vocab._DEBIAN_DIR", tmp_path / "absent")
    assert find_wordnet() == dst
    assert len(load_words()) == 77503


def test_synsets_relations_and_examples(wordnet):
    syn = wordnet.synsets
    assert len(syn) == 117659  # WordNet 3.0's synset count
    assert ("bad", "good") in wordnet.antonym_pairs()
    assert ("dog", "canine") in wordnet.hypernym_pairs()
    assert any({"car", "automobile"} <= set(s) for s in wordnet.synonym_sets())
    examples = wordnet.examples()
    assert len(examples) > 40000
    assert all(e and '"' not in e for _, e in examples[:1000])
