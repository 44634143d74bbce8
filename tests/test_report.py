"""The report from real outputs (GloVe + MiniLM on a small vocabulary), rendered in headless
Chromium: every figure must load. Also: a broken image is caught, absent stages are skipped."""
import contextlib
import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pandas as pd
import pytest

from conftest import BUCKET, ROOT, run_job

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MAX_WORDS = 300
MODELS = "[glove_6b_50d,sbert_minilm]"

# Loaded in an iframe of the same origin; the wrapper's load event fires after the frame's, so
# by then every image has loaded or failed, and its naturalWidth says which.
WRAPPER = """<!DOCTYPE html><html><body><iframe id="f" src="{page}" width="1200" height="900"></iframe>
<script>
window.addEventListener("load", function () {{
  var imgs = Array.from(document.getElementById("f").contentDocument.images);
  var out = document.createElement("pre"); out.id = "result";
  out.textContent = JSON.stringify(imgs.map(function (i) {{ return [i.getAttribute("src"), i.naturalWidth]; }}));
  document.body.appendChild(out);
}});
</script></body></html>
"""


@contextlib.contextmanager
def serve(folder: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # one line per request on stderr otherwise
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def image_widths(root: Path, page: str, tmp: Path) -> list[tuple[str, int]]:
    """(src, naturalWidth) of every <img> of ``root/page`` as headless Chromium loads it."""
    # Not a skip: a run without Chromium would prove nothing about the images. `make test`
    # installs it (make chromium) when run as root.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium)"
    wrapper = root / "_render_check.html"
    wrapper.write_text(WRAPPER.format(page=page))
    try:
        with serve(root) as url:
            proc = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp / 'chromium-profile'}", "--dump-dom", f"{url}/_render_check.html"],
                capture_output=True, text=True, timeout=120)
    finally:
        wrapper.unlink()
    m = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"chromium gave no result (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return [(src, int(w)) for src, w in json.loads(m.group(1).replace("&quot;", '"'))]


def broken(widths: list[tuple[str, int]]) -> list[str]:
    return [src for src, w in widths if w == 0]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Real outputs of the pipeline (extraction, similarity, analogies and word-pair similarity,
    report) on a small vocabulary, in one process with one embedded Ray; a two-category BATS
    folder (real BATS lines) keeps the analogy and group stages small."""
    tmp = tmp_path_factory.mktemp("report")
    bats = tmp / "bats"
    bats.mkdir()
    src = ROOT / "data" / "BATS_3.0"
    for pattern in ("*/E01 *.txt", "*/I01 *.txt"):
        f = next(src.glob(pattern))
        (bats / f.name).write_text("\n".join(f.read_text().splitlines()[:12]) + "\n")
    out = tmp / "out"
    run_job("pipeline.py", f"models={MODELS}", "stages=[extract,similarity,agreement,analogy,report]",
            f"vocab.max_words={MAX_WORDS}", f"out_dir={out}", "ray.num_cpus=2", f"extract.bats_dir={bats}",
            f"similarity.groups.bats_dir={bats}", "similarity.groups.random_pairs=2000", "similarity.block=128",
            f"analogy.datasets=[bats:{bats}]", "agreement.permutation.sample=300")
    return out


def test_report_renders_with_every_image(outputs, tmp_path):
    proc = run_job("report.py", f"out_dir={outputs}", "report.neighbor_words=[abandon,aback,king]")
    index = outputs / "report" / "index.html"
    page = html.unescape(index.read_text())
    pngs = sorted(p.name for p in (outputs / "report" / "figures").glob("*.png"))
    # Every figure the brief asks for, for the stages that ran.
    for name in ["similarity_distributions", "mean_variance", "group_means", "group_distributions",
                 "correlations", "agreement_heatmaps", "analogy_glove_6b_50d", "analogy_sbert_minilm"]:
        assert f"{name}.png" in pngs, (name, pngs)
    widths = image_widths(outputs, "report/index.html", tmp_path)
    assert sorted(src for src, _ in widths) == sorted(f"figures/{p}" for p in pngs)
    assert not broken(widths), f"broken images: {broken(widths)}"
    # Captions carry the counts read from the outputs.
    summary = json.loads((outputs / "similarity" / "glove_6b_50d" / "summary.json").read_text())
    assert f"glove_6b_50d: {summary['n_pairs']:,} pairs of {summary['n_words']:,} words" in page
    res = pd.read_parquet(outputs / "analogy" / "results.parquet")
    glove = res[res["model"] == "glove_6b_50d"].groupby("method")["n_answered"].sum()
    assert glove.max() > 0 and f"{glove.max():,} answered" in page
    ws = pd.read_parquet(outputs / "wordsim" / "results.parquet")
    assert f"{ws['spearman'].iloc[0]:.3f}" in page
    nb = pd.read_parquet(outputs / "similarity" / "sbert_minilm" / "neighbors.parquet")
    first = nb[(nb["word"] == "abandon") & (nb["rank"] == 1)].iloc[0]
    assert f"{first['neighbor']} ({first['cosine']:.2f})" in page
    assert "Not in any model's neighbour table: king" in page
    # The agreement section: its numbers, read from its tables, beside chance and the null.
    ag = pd.read_parquet(outputs / "agreement" / "pairs.parquet")
    knn = ag[(ag["measure"] == "mutual_knn") & (ag["k"] == 10) & (ag["group"] == "all")].iloc[0]
    assert "Do the models agree?" in page and f"chance {knn['chance']:.5f} = k/(N-1)" in page
    assert f"{knn['value']:.4f}" in page and "PC1 variance share" in page
    cka = ag[ag["measure"] == "cka_debiased"].iloc[0]
    assert f"{cka['null_mean']:+.4f} +- {cka['null_sd']:.4f}" in page
    # Where the work ran: units per Ray node and stage, counted from the stages' own records.
    assert "Where the work ran" in page
    shards = json.loads((outputs / "embeddings" / "glove_6b_50d" / "manifest.json").read_text())["time"]["nodes_this_run"]
    [node] = set(shards.values())  # one embedded Ray: one node ran everything
    extract_units = sum(len(json.loads((outputs / "embeddings" / m / "manifest.json").read_text())["time"]
                            ["nodes_this_run"]) for m in ("glove_6b_50d", "sbert_minilm"))
    cells = re.search(rf"<tr><td>{node[:12]}</td>(.*?)</tr>", index.read_text(), re.S)
    assert cells and f"<td class=\"num\">{extract_units:,}</td>" in cells.group(1), cells
    # No contextual stage ran: its section says so instead of failing.
    assert "Skipped:" in page and "contextual/results.parquet is absent" in page
    assert "report:" in proc.stdout


def test_report_from_an_object_store(outputs, s3_env, tmp_path):
    """out_dir=s3://...: the same page and the same figures as from the local folder."""
    import pyarrow.fs as pafs

    s3 = pafs.S3FileSystem(endpoint_override=s3_env["AWS_ENDPOINT_URL"], access_key="test", secret_key="test",
                           region="us-east-1", scheme="http")
    prefix = f"{BUCKET}/report-test"
    for stage in ("embeddings", "similarity", "agreement", "analogy", "wordsim", ".pipeline"):  # the commits vouch for them
        pafs.copy_files(str(outputs / stage), f"{prefix}/{stage}", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=s3)
    words = "report.neighbor_words=[abandon,aback,king]"
    run_job("report.py", f"out_dir=s3://{prefix}", words, env=s3_env)
    local = tmp_path / "local"
    shutil.copytree(outputs, local, ignore=shutil.ignore_patterns("report", "logs"))
    run_job("report.py", f"out_dir={local}", words)
    with s3.open_input_stream(f"{prefix}/report/index.html") as f:
        remote_page = f.read().decode()
    assert remote_page.replace(f"s3://{prefix}", "OUT") == (local / "report" / "index.html").read_text().replace(
        str(local), "OUT")
    names = sorted(p.name for p in (local / "report" / "figures").glob("*.png"))
    listed = s3.get_file_info(pafs.FileSelector(f"{prefix}/report/figures"))
    assert sorted(i.base_name for i in listed) == names
    for n in names:
        with s3.open_input_stream(f"{prefix}/report/figures/{n}") as f:
            assert f.read() == (local / "report" / "figures" / n).read_bytes(), n


def test_a_broken_image_is_caught(tmp_path):
    from matplotlib.figure import Figure

    from embcompare.report.figures import png_bytes

    site = tmp_path / "site"
    (site / "figures").mkdir(parents=True)
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [1, 0])
    (site / "figures" / "ok.png").write_bytes(png_bytes(fig, dpi=50))
    (site / "page.html").write_text('<img src="figures/ok.png"><img src="figures/missing.png">')
    widths = image_widths(site, "page.html", tmp_path)
    assert broken(widths) == ["figures/missing.png"]
    assert dict(widths)["figures/ok.png"] == 100  # 2 inches at 50 dpi


def test_absent_stages_are_skipped_not_fatal(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    run_job("report.py", f"out_dir={out}")
    page = (out / "report" / "index.html").read_text()
    for stage in ["similarity", "agreement", "analogy", "wordsim", "contextual"]:
        assert f"{stage}/" in page
    assert page.count('class="skipped"') == 9  # every section
    assert not list((out / "report").glob("figures/*.png"))


def test_contextual_figure_and_caption_from_its_table():
    from embcompare.report import ReportInputs, build_sections
    from embcompare.report.figures import png_bytes

    rows = [{"model": m, "task": t, "level": lv, "measure": ms, "n": n, "mean": 0.1 * i, "std": 0.01}
            for i, (m, n) in enumerate([("glove_6b_50d", 17), ("sbert_minilm", 23)])
            for t in ("synonym", "negation") for lv, ms in (("token", "AICV"), ("sentence", "SMV"))]
    secs = build_sections(ReportInputs(contextual=pd.DataFrame(rows)), [])
    ctx = next(s for s in secs if s.title == "Contextual measures")
    fig = next(it for it in ctx.items if it.figure is not None)
    assert "2 tasks, 17 to 23 anchor words" in fig.caption
    assert png_bytes(fig.figure)[:8] == b"\x89PNG\r\n\x1a\n"
    # Two panels (AICV token, SMV sentence), each with a bar per task and model.
    axes = [ax for ax in fig.figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["AICV (token)", "SMV (sentence)"]
    assert all(len(ax.patches) == 4 for ax in axes)


def test_contextual_figure_shows_one_layer_per_model():
    """With several token layers per model, the figure shows the layer the model comparison used
    (comparisons.parquet), the table every layer."""
    from embcompare.report import ReportInputs, build_sections

    rows = [{"model": m, "task": "negation", "level": "token", "layer": ly, "measure": "AICV", "n": 10,
             "mean": mean, "std": 0.01}
            for m, layers in [("glove_6b_50d", [("static", 0.0)]), ("sbert_minilm", [("-1", 0.3), ("input_table", 0.9)])]
            for ly, mean in layers]
    cmp = pd.DataFrame([{"task": "negation", "measure": "AICV", "level": "token", "model_a": "glove_6b_50d",
                         "model_b": "sbert_minilm", "layer_a": "static", "layer_b": "input_table"}])
    secs = build_sections(ReportInputs(contextual=pd.DataFrame(rows), contextual_comparisons=cmp), [])
    ctx = next(s for s in secs if s.title == "Contextual measures")
    fig = next(it for it in ctx.items if it.figure is not None)
    bars = sorted(round(p.get_height(), 3) for p in fig.figure.axes[0].patches)
    assert bars == [0.0, 0.9]  # MiniLM's input_table layer, as compared; not its -1 layer
    assert "sbert_minilm token: input_table" in fig.caption
    table = next(it for it in ctx.items if it.table is not None).table
    assert table.count("<tr>") == 1 + 3  # header + every layer


def test_unknown_report_key_is_refused(tmp_path):
    proc = run_job("report.py", f"out_dir={tmp_path}", "+report.neigbor_words=[x]", check=False)
    assert proc.returncode != 0
    assert "report.neigbor_words" in proc.stderr + proc.stdout
    assert not (tmp_path / "report").exists()


def test_contextual_cross_task_table_at_the_shown_layer():
    from embcompare.report import ReportInputs, build_sections

    rows = [{"model": "sbert_minilm", "task": t, "level": "token", "layer": ly, "measure": "AICV_ov", "n": 10,
             "mean": 0.2, "std": 0.01} for t in ("negation", "synonym") for ly in ("-1", "input_table")]
    cross = pd.DataFrame([{"model": "sbert_minilm", "level": "token", "layer": ly, "measure": ms,
                           "task_a": "negation", "task_b": "synonym", "n": n, "mean_a": 0.3, "mean_b": 0.1,
                           "mean_diff": 0.2} for ly, ms, n in [("-1", "AICV_ov", 7), ("input_table", "AICV_ov", 7),
                                                              ("-1", "ACD", 7), ("-1", "AICV_ov", 0)]])
    secs = build_sections(ReportInputs(contextual=pd.DataFrame(rows), contextual_cross=cross), [])
    ctx = next(s for s in secs if s.title == "Contextual measures")
    item = next(it for it in ctx.items if it.name == "contextual_cross_task")
    assert "(anchor, original sentence) pairs both hold" in item.caption
    assert item.table.count("<tr>") == 1 + 1  # header + the -1 layer's AICV_ov row with n > 0
    assert "+0.2000" in item.table
