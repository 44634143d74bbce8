"""The pipeline with out_dir on an S3-compatible object store (moto's server, started here) gives
the same tables as a run into a local folder."""
import pyarrow.parquet as pq

from conftest import BUCKET, run_job

ARGS = ["models=[glove_6b_50d,sbert_minilm]", "vocab.max_words=300", "extract.evaluation_words=false",
        "similarity.groups.random_pairs=500", "analogy.datasets=[google]",
        "agreement.permutation.sample=200", "stages=[extract,similarity,agreement,analogy]", "ray.num_cpus=2"]


def _tables(fs, root: str) -> dict[str, object]:
    """Every Parquet file under ``root``, read into pandas, by relative path."""
    from pyarrow import fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    out = {}
    for i in infos:
        if i.type == pafs.FileType.File and i.path.endswith(".parquet") and "/." not in i.path[len(root):]:
            out[i.path[len(root):].lstrip("/")] = pq.read_table(i.path, filesystem=fs).to_pandas()
    return out


def test_pipeline_on_s3_gives_the_tables_of_a_local_run(tmp_path, s3_env):
    from pyarrow import fs as pafs

    local = tmp_path / "local"
    run_job("pipeline.py", *ARGS, f"out_dir={local}", env=s3_env)
    run_job("pipeline.py", *ARGS, f"out_dir=s3://{BUCKET}/run", env=s3_env)

    s3 = pafs.S3FileSystem(endpoint_override=s3_env["AWS_ENDPOINT_URL"], access_key="test", secret_key="test",
                           region="us-east-1")
    remote = _tables(s3, f"{BUCKET}/run")
    here = _tables(pafs.LocalFileSystem(), str(local))
    assert set(remote) == set(here)
    for name in ["similarity/glove_6b_50d/histogram.parquet", "similarity/sbert_minilm/groups.parquet",
                 "similarity/correlations.parquet", "analogy/results.parquet", "wordsim/results.parquet",
                 "agreement/pairs.parquet", "agreement/words.parquet", "agreement/anisotropy.parquet"]:
        assert name in here, name
    assert any(k.startswith("embeddings/sbert_minilm/part-") for k in here)
    for name, table in here.items():
        other = remote[name]
        assert list(other.columns) == list(table.columns), name
        assert other.astype(str).equals(table.astype(str)), name
    # Nothing half-written is left behind on the store.
    keys = [i.path for i in s3.get_file_info(pafs.FileSelector(f"{BUCKET}/run", recursive=True))]
    assert not [k for k in keys if "/.tmp-" in k]
