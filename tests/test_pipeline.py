"""jobs/pipeline.py: overrides routed to the stages that take them, every config checked first."""
import sys

import pytest

from conftest import ROOT, run_job

sys.path.insert(0, str(ROOT / "jobs"))
import pipeline  # noqa: E402


def test_overrides_go_to_the_stages_that_take_them():
    p = pipeline.plan(["models=[glove_6b_50d,sbert_minilm]", "out_dir=/tmp/x", "vocab.max_words=50",
                       "similarity.top_k=3", "analogy.datasets=[google]", "wordsim.datasets=[simlex999]",
                       "model.glove_6b_50d.limit=1000", "stages=[report,extract,similarity,analogy]"])
    assert p.stages == ["extract", "similarity", "analogy", "report"]  # the data flow's order, not the user's
    assert p.models == ["glove_6b_50d", "sbert_minilm"] and p.out_dir == "/tmp/x"
    ex, sim, an = p.overrides["extract"], p.overrides["similarity"], p.overrides["analogy"]
    assert ex[0] == "model=[glove_6b_50d,sbert_minilm]" and "model.glove_6b_50d.limit=1000" in ex
    assert sim[0] == "models=[glove_6b_50d,sbert_minilm]" and "similarity.top_k=3" in sim
    assert "similarity.top_k=3" not in ex and "similarity.top_k=3" not in an
    assert {"analogy.datasets=[google]", "wordsim.datasets=[simlex999]"} <= set(an)
    assert all("vocab.max_words=50" in p.overrides[s] for s in p.stages)
    assert all("out_dir=/tmp/x" in p.overrides[s] for s in p.stages)


def test_agreement_runs_by_default_right_after_similarity_and_takes_its_own_keys():
    p = pipeline.plan(["agreement.k=[1,5]", "similarity.top_k=5"])
    assert p.stages[:3] == ["extract", "similarity", "agreement"] and "contextual" in p.stages
    assert "agreement.k=[1,5]" in p.overrides["agreement"] and "agreement.k=[1,5]" not in p.overrides["similarity"]


@pytest.mark.parametrize("arg, named", [("simliarity.top_k=3", "simliarity"), ("stages=[extract,simlarity]", "simlarity"),
                                        ("top_k", "top_k"),
                                        # contextual would load the model without the override
                                        ("model.glove_6b_50d.limit=1000", "reach extraction only")])
def test_an_override_no_stage_takes_is_refused(arg, named):
    with pytest.raises(pipeline.PipelineError, match=named):
        pipeline.plan([arg])


@pytest.mark.parametrize("arg, named", [("similarity.topk=3", "topk"),            # Hydra: no such key
                                        ("similarity.top_k=-1", "similarity.top_k"),  # the stage's schema
                                        ("analogy.datasets=[goggle]", "goggle"),
                                        ("agreement.k=[1,50]", "set similarity.top_k=50"),  # across stages
                                        ("agreement.rbo_p=1.5", "agreement.rbo_p")])
def test_a_bad_stage_setting_stops_before_any_stage_runs(tmp_path, arg, named):
    # A later stage's mistake must stop the run before extraction writes anything.
    proc = run_job("pipeline.py", "models=[glove_6b_50d]", f"out_dir={tmp_path}", "vocab.max_words=20", arg,
                   check=False)
    assert proc.returncode != 0
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "embeddings").exists()


def test_a_finished_stage_is_skipped_only_while_its_outputs_are_the_ones_it_wrote(tmp_path):
    import shutil

    args = ["models=[glove_6b_50d]", f"out_dir={tmp_path}", "vocab.max_words=150", "extract.evaluation_words=false",
            "similarity.groups.random_pairs=100", "stages=[extract,similarity]", "ray.num_cpus=2"]
    first = run_job("pipeline.py", *args)
    assert "== similarity ==" in first.stdout
    again = run_job("pipeline.py", *args)
    assert "== similarity ==" not in again.stdout and "similarity" in again.stdout  # skipped, headline kept
    shutil.rmtree(tmp_path / "similarity")
    third = run_job("pipeline.py", *args)
    assert "== similarity ==" in third.stdout
    assert (tmp_path / "similarity" / "glove_6b_50d" / "summary.json").exists()
