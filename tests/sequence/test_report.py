"""vidseq report: the pages of a run, a comparison, a tuning study and a windowed prediction.

One real attention run on real sample videos (built once) gives the run page:
per-video predictions in metrics.json, filmstrips decoded at the cache's frame
indices, attention weights. The browser tests load each kind of page from
disk in one headless Chromium (DevTools protocol) and check that no request
leaves the file, the console has no error, the misclassified section is exactly
metrics.json's misclassified videos, and every filmstrip image decodes.
"""

import base64
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidseq.cli import main
from vidseq.sequence.report.build import report
from vidseq.sequence.report.filmstrip import THUMB_HEIGHT, read_filmstrip, thumb_size
from vidseq.sequence.report.frame_weights import frame_weights, masked_softmax

from .browser import Browser, find_chromium

SIZE_BUDGET = 5_000_000
"""Bytes of a page with 50 videos of 16 frames (docs/report.md states it)."""


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory, make_sample_cache, eagerly):
    """``(cache, run_dir)``: an attention head barely trained on Grow/Shrink (some videos wrong)."""
    from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
    from vidseq.sequence.train.training import train_sequence

    root = tmp_path_factory.mktemp("report-run")
    _, cache = make_sample_cache(root, 6)
    config = TrainConfig(
        head=HeadConfig(head="attention", units=8),
        fit=FitConfig(epochs=1, batch_size=4, lr=1e-4, patience=0, seed=5),
    )
    with eagerly():
        run = train_sequence(cache, root / "run", config, verbose=0).run_dir
    return cache, run


def metrics_of(run):
    return json.loads((Path(run) / "metrics.json").read_text())


def misclassified(metrics):
    """``{video id: (true, predicted)}`` of metrics.json's misclassified videos."""
    return {
        v["id"]: (v["label"], v["top"][0][0])
        for v in metrics["videos"]
        if v["top"][0][0] != v["label"]
    }


class Articles(HTMLParser):
    """The video articles of a page: section, id, true and predicted labels, images."""

    def __init__(self):
        super().__init__()
        self.articles, self.images = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "article":
            self.articles.append({**attrs, "images": []})
        elif tag == "img":
            self.images.append(attrs)
            if self.articles:
                self.articles[-1]["images"].append(attrs)


def parse(path):
    parser = Articles()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return parser


def decode_data_uri(src):
    assert src.startswith("data:image/jpeg;base64,")
    data = np.frombuffer(base64.b64decode(src.split(",", 1)[1]), dtype=np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


# ------------------------------------------------------------------ evaluation records


@pytest.mark.slow
def test_evaluation_records_top3_per_video_consistent_with_the_confusion_matrix(attention_run):
    metrics = metrics_of(attention_run[1])
    videos = metrics["videos"]
    assert len(videos) == metrics["num_videos"]
    names = metrics["class_names"]
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for v in videos:
        probabilities = [p for _, p in v["top"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert len(v["top"]) == min(3, len(names))
        matrix[names.index(v["label"]), names.index(v["top"][0][0])] += 1
    assert matrix.tolist() == metrics["confusion_matrix"]
    assert misclassified(metrics), "the fixture run must get some video wrong"


# ------------------------------------------------------------------------- run page


@pytest.mark.slow
def test_training_writes_the_run_page_listing_exactly_the_misclassified_videos(attention_run):
    cache, run = attention_run
    page = parse(run / "report.html")
    metrics = metrics_of(run)
    listed = {
        a["data-video-id"]: (a["data-true"], a["data-predicted"])
        for a in page.articles
        if a["data-section"] == "misclassified"
    }
    assert listed == misclassified(metrics)
    from vidseq.cache.store import FeatureStore

    with FeatureStore(cache) as store:
        for article in page.articles:
            i = store.index_of(article["data-video-id"])
            assert len(article["images"]) == int(store.num_valid[i])  # every real frame
            for image, ms in zip(article["images"], store.timestamps_ms(i), strict=False):
                assert image["alt"] and f"{ms / 1000:.2f} s" in image["alt"]
                frame = decode_data_uri(image["src"])
                assert frame.shape[:2] == thumb_size(store.meta.input_size)


@pytest.mark.slow
def test_run_page_shows_attention_weights_that_sum_to_one(attention_run):
    html = (attention_run[1] / "report.html").read_text(encoding="utf-8")
    first = html.split('<article class="video"', 2)[1]
    weights = [float(w) for w in re.findall(r"weight (\d\.\d\d)", first)]
    assert len(weights) == 6 and abs(sum(weights) - 1) < 0.03
    mask = np.array([[True, True, False], [False, False, False]])
    out = masked_softmax(np.array([[1.0, 2.0, 50.0], [1.0, 1.0, 1.0]]), mask)
    np.testing.assert_allclose(out, [[0.26894142, 0.73105858, 0], [0, 0, 0]], rtol=1e-6)


@pytest.mark.parametrize("head", ["transformer", "lstm"])
def test_frame_weights_of_a_self_attention_head_and_none_for_an_rnn(head):
    from vidseq.sequence.config import HeadConfig
    from vidseq.sequence.train.model import build_head

    model = build_head(3, 8, HeadConfig(head=head, units=8, layers=2), num_frames=5)
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32)
    x[1, 3:] = 0.0  # padding
    weights = frame_weights(model, x)
    if head == "lstm":
        assert weights is None
        return
    np.testing.assert_allclose(weights.sum(axis=1), [1.0, 1.0], rtol=1e-5)
    assert (weights[1, 3:] == 0).all() and (weights[:, :3] > 0).all()


@pytest.mark.slow
def test_max_videos_caps_the_page_most_wrong_first(attention_run, tmp_path):
    result = report(attention_run[1], out=tmp_path / "one.html", max_videos=1)
    page = parse(tmp_path / "one.html")
    assert result.facts["videos_shown"] == 1 and len(page.articles) == 1
    metrics = metrics_of(attention_run[1])
    wrong = [v for v in metrics["videos"] if v["top"][0][0] != v["label"]]
    gap = {v["id"]: v["top"][0][1] - dict(v["top"]).get(v["label"], 0.0) for v in wrong}
    assert page.articles[0]["data-video-id"] == max(gap, key=gap.get)


def test_filmstrips_of_50_videos_of_16_frames_fit_the_size_budget(video_writer, tmp_path):
    """A 224x224 run's 16 thumbnails of one real video, times 50, under the stated budget."""
    from vidseq.extract.decode.framespec import FrameSpec
    from vidseq.extract.sources.sample_data import sample_video

    frames, fps = sample_video("RotateCW", 1, 1)
    path = video_writer(tmp_path / "v.avi", frames, fps)
    indices = np.linspace(0, 40, 16).astype(int)
    strip = read_filmstrip(path, indices, indices * 40.0, 16, FrameSpec(), thumb_size((224, 224)))
    assert strip.missing is None and len(strip.frames) == 16
    assert decode_data_uri(strip.frames[0]["src"]).shape[:2] == (THUMB_HEIGHT, THUMB_HEIGHT)
    per_video = sum(len(f["src"]) + 300 for f in strip.frames)  # the markup around each
    assert 50 * per_video + 100_000 <= SIZE_BUDGET


# ------------------------------------------------------------------------ bad input


@pytest.mark.slow
def test_a_run_whose_videos_moved_renders_marks_them_and_warns_once(
    cache_factory, small_config, eagerly, tmp_path, capsys
):
    """conftest's caches list videos under /data/ that do not exist."""
    from vidseq.sequence.train.training import train_sequence

    cache = cache_factory(per_class={"train": 6, "val": 2, "test": 2})
    with eagerly():
        run = train_sequence(cache, tmp_path / "run", small_config(epochs=1), verbose=0).run_dir
    out = tmp_path / "moved.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "missing" in warnings[0]
    html = out.read_text(encoding="utf-8")
    page = parse(out)
    assert page.articles and all("missing" in a["class"] for a in page.articles)
    assert html.count("Missing video:") == len(page.articles)


def test_a_run_whose_cache_moved_still_gets_its_page(attention_run, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(attention_run[1], moved)
    config = json.loads((moved / "config.json").read_text())
    config["cache_path"] = str(tmp_path / "gone.h5")
    (moved / "config.json").write_text(json.dumps(config))
    result = report(moved)
    assert result.facts["missing"] == result.facts["videos_shown"] > 0
    assert len(result.warnings) == 1 and "gone.h5" in result.warnings[0]


def test_an_older_run_without_predictions_says_how_to_get_them(attention_run, tmp_path):
    old = tmp_path / "run"
    shutil.copytree(attention_run[1], old)
    metrics = metrics_of(old)
    del metrics["videos"]
    (old / "metrics.json").write_text(json.dumps(metrics))
    result = report(old)
    assert "vidseq evaluate RUN" in (old / "report.html").read_text(encoding="utf-8")
    assert any("vidseq evaluate RUN" in w for w in result.warnings)


def test_a_directory_that_is_not_a_run_exits_2_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["report", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "not a run, compare or tune directory" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert main(["report", str(tmp_path), "--max-videos", "-1"]) == 2
    assert "--max-videos must be an integer >= 0" in capsys.readouterr().err


# ------------------------------------------------------------------ compare and tune


@pytest.fixture(scope="module")
def study_dirs(attention_run, tmp_path_factory):
    """``(compare_dir, tune_dir)`` whose files name the fixture run."""
    from vidseq.sequence.studies.compare import ComparisonResult, HeadRuns, write_comparison

    run = attention_run[1]
    accuracy = metrics_of(run)["accuracy"]
    compare_dir = tmp_path_factory.mktemp("compare")
    result = ComparisonResult(
        compare_dir,
        "features.h5",
        [5],
        [HeadRuns("attention", [accuracy], 1234, [1.5], [str(run)]), HeadRuns("gru", error="boom")],
        [0.5],
    )
    write_comparison(result)
    tune_dir = tmp_path_factory.mktemp("tune")
    shutil.copytree(run, tune_dir / "best")
    (tune_dir / "tune.json").write_text(
        json.dumps({"metric": "val_accuracy", "direction": "maximize", "trials": 2})
    )
    (tune_dir / "trials.csv").write_text(
        f"number,value,state,head,run\n0,{accuracy},COMPLETE,attention,{run}\n"
        "1,0.25,COMPLETE,gru,trials/1\n"
    )
    return compare_dir, tune_dir


def test_compare_page_links_each_run_page(study_dirs):
    result = report(study_dirs[0])
    html = result.path.read_text(encoding="utf-8")
    assert result.kind == "compare" and result.facts["runs_linked"] == 1
    assert re.search(r'<a href="[^"]*/run/report.html">run</a>', html)
    assert "bag-of-frames baseline" in html and "failed" in html and "<svg" in html


def test_tune_page_lists_every_trial_and_links_the_best_run(study_dirs):
    result = report(study_dirs[1])
    html = result.path.read_text(encoding="utf-8")
    assert result.kind == "tune" and result.facts["runs_linked"] == 2
    assert 'href="best/report.html"' in html and html.count("<tr><td") == 2


# ------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs these tests")
    chromium = Browser(executable)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def timeline_page(attention_run, tmp_path_factory):
    """``predict --window ... --report FILE`` on a sample video of the run's cache."""
    from vidseq.cache.store import FeatureStore

    with FeatureStore(attention_run[0]) as store:
        video = store.paths[0]
    out = tmp_path_factory.mktemp("timeline") / "timeline.html"
    args = ["predict", str(attention_run[1]), video, "--window", "1", "--report", str(out)]
    assert main(args) == 0
    return out


PAGE_STATE = """JSON.stringify({
  images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0 && !!i.alt),
  strips: Array.from(document.querySelectorAll('.strip')).map(s => [
    +s.dataset.frames,
    Array.from(s.querySelectorAll('img')).filter(i => i.complete && i.naturalWidth > 0).length]),
  wrong: Array.from(document.querySelectorAll('article[data-section="misclassified"]'))
    .map(a => [a.dataset.videoId, a.dataset.true, a.dataset.predicted]),
})"""


def check_page(browser, path, shots):
    """Loads a page from disk; asserts no request leaves the file and no console error."""
    url = Path(path).resolve().as_uri()
    tab, log = browser.load(url)
    assert log.errors == []
    assert {u for u in log.requests if not u.startswith("data:")} == {url}
    state = json.loads(browser.evaluate(tab, PAGE_STATE))
    assert all(state["images"])
    assert all(frames == decoded for frames, decoded in state["strips"])
    browser.screenshot(tab, shots / f"{Path(path).parent.name}-{Path(path).stem}.png")
    browser.resize(tab, 390, 800)  # a phone: the page itself never scrolls sideways
    assert browser.evaluate(tab, "document.documentElement.scrollWidth") <= 390
    return tab, state


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where the 1280x800 screenshots go: $VIDSEQ_SCREENSHOTS, or a temporary folder."""
    folder = Path(os.environ.get("VIDSEQ_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_run_page_in_a_browser(browser, attention_run, shots):
    run = attention_run[1]
    tab, state = check_page(browser, run / "report.html", shots)
    wrong = {video: (true, predicted) for video, true, predicted in state["wrong"]}
    assert wrong == misclassified(metrics_of(run))
    assert len(state["strips"]) == len(parse(run / "report.html").articles)
    png = cv2.imread(str(shots / "run-report.png"))
    assert png.shape[:2] == (800, 1280)
    sort = """(() => { const t = document.getElementById('per-class-table');
      t.querySelectorAll('th button')[3].click(); t.querySelectorAll('th button')[3].click();
      return Array.from(t.tBodies[0].rows).map(r => +r.cells[3].textContent); })()"""
    f1 = browser.evaluate(tab, sort)
    assert f1 == sorted(f1, reverse=True)


@pytest.mark.slow
def test_compare_tune_and_timeline_pages_in_a_browser(browser, study_dirs, timeline_page, shots):
    for path in (study_dirs[0] / "report.html", study_dirs[1] / "report.html"):
        if not path.exists():
            report(path.parent)
        check_page(browser, path, shots)
    _, state = check_page(browser, timeline_page, shots)
    assert state["strips"] and all(frames >= 1 for frames, _ in state["strips"])
