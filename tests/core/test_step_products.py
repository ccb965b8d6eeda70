"""Step products: what the writer derives from each snapshot of a long example, and what it stores.

Spec:
- an example of at least ``step_products.MIN_TOKENS`` tokens gets its raw head mean and the default
  view's head mean stored beside its attention, and every example of the stream gets its head
  metrics and pattern class as ``head_*`` summaries;
- what is stored equals the model's own attention (an independent eager forward) put through the
  view's definition, within the encoding's error;
- the plugin's answers from the stored products equal its answers derived from the attention;
- short examples and reduced runs get none, and a run without products is read as before.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from attnflows_callback import AttentionRecorder, ProbeSet, analysis, open_run, step_products
from attnflows_callback.aggregate import source_row
from attnflows_callback.encodings import get_encoding
from tests.helpers import PROBE_TEXTS, as_an_older_shard, nudge, tiny_model, tokenizer
from tests.truth import eager_forward

LONG_TEXT = " ".join(PROBE_TEXTS)
LONG_PAIR = " ".join(reversed(PROBE_TEXTS[:4])) + ", soggyish and unremarkable, isn't it?"
SHORT_TEXT = PROBE_TEXTS[0]
STEPS = (0, 5)
BOUND = get_encoding("zstd-u8").max_abs_error + 1e-6


def record(run_dir, **recorder_kwargs):
    model = tiny_model("bert", layers=2, heads=4)
    probe = ProbeSet([LONG_TEXT, SHORT_TEXT], text_pairs=[LONG_PAIR, "fine"], labels=[1, 0])
    recorder = AttentionRecorder(model, tokenizer(), probe, run_dir, **recorder_kwargs)
    for k, step in enumerate(STEPS):
        if k:
            nudge(model, seed=step)
        recorder.snapshot(step)
    recorder.close("finished")
    return model


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("products") / "run"
    model = record(run_dir)
    return run_dir, model


def ids_of(run, i):
    return [None if w < 0 else int(w) for w in run.word_ids(i)]


def test_the_probe_has_a_long_and_a_short_example(recorded):
    run = open_run(recorded[0])
    assert run.length(0) >= step_products.MIN_TOKENS > run.length(1)


def test_long_examples_carry_head_means_and_every_example_its_head_metrics(recorded):
    run = open_run(recorded[0])
    for step in STEPS:
        assert run.head_mean(0, step, "self", "none") is not None
        assert run.head_mean(0, step, "self", "special_punct") is not None
        assert run.head_mean(0, step, "self", "special") is None  # only the raw and the default view's
        assert run.head_mean(1, step, "self", "none") is None  # short: derived on request
        summary = run.summary(step, "self")
        for name in [*map(step_products.summary_name, step_products.METRICS), "head_pattern"]:
            assert summary[name].shape == (2, 2, 4), name


def test_stored_head_means_equal_the_models_attention_through_the_view(recorded):
    run_dir, model = recorded
    run = open_run(run_dir)
    attention, _ = eager_forward(model, tokenizer(), LONG_TEXT, LONG_PAIR)
    expected = attention["self"].astype(np.float64)
    tokens, ids = run.tokens(0), ids_of(run, 0)
    raw = run.head_mean(0, STEPS[-1], "self", "none")
    assert (raw.hidden, raw.units) == (0.0, "tokens")
    np.testing.assert_allclose(raw.values, expected.mean(axis=1), atol=BOUND)
    shown = run.head_mean(0, STEPS[-1], "self", "special_punct")  # the default view: over words
    view = analysis.apply_view(expected, tokens, ids, drop_special=True, drop_punctuation=True, words=True)
    assert shown.units == "words" and len(view.labels) < len(tokens)
    np.testing.assert_allclose(shown.values, view.attention.mean(axis=1), atol=BOUND)
    assert shown.hidden == pytest.approx(float(np.mean(view.hidden_mass)), abs=1e-5)
    view = analysis.apply_view(expected, tokens, ids, drop_special=True, drop_punctuation=True, words=False)
    # The classification token's rollout rows, stored as computed from the float attention (no quantisation).
    np.testing.assert_allclose(run.source_row(0, STEPS[-1], "self", "none"), analysis.rollout(expected)[-1][0],
                               atol=1e-5)
    np.testing.assert_allclose(run.source_row(0, STEPS[-1], "self", "special_punct"),
                               analysis.rollout(view.attention)[-1][0], atol=1e-5)


def test_a_steps_source_rows_read_together_equal_each_read_alone_and_leave_out_short_examples(recorded):
    run = open_run(recorded[0])
    wanted = {0: "special_punct", 1: "special_punct"}  # example 1 is short: no products
    rows = run.source_rows(STEPS[-1], "self", wanted)
    assert list(rows) == [0]
    np.testing.assert_array_equal(rows[0], run.source_row(0, STEPS[-1], "self", "special_punct"))
    assert run.source_rows(STEPS[-1], "self", {0: "special"}) == {}  # targets no mean was stored for


def shard_of(run_dir):
    return run_dir / "attnflows" / "snapshots" / f"step-{STEPS[-1]:012d}.h5"


def test_a_step_stores_its_source_rows_in_one_table_and_older_shards_read_the_same_rows(recorded, tmp_path):
    with h5py.File(shard_of(recorded[0])) as f:
        table = f["source_rows/self/special_punct"]
        assert table.dtype == np.float32 and table.shape == (2, open_run(recorded[0]).length(0))
        assert np.isnan(table[1]).all()  # the short example has no row
    wanted = {0: "special_punct", 1: "special_punct"}
    rows = open_run(recorded[0]).source_rows(STEPS[-1], "self", wanted)
    older = shutil.copytree(recorded[0], tmp_path / "older")
    as_an_older_shard(shard_of(older))
    before = open_run(older).source_rows(STEPS[-1], "self", wanted)
    assert list(before) == list(rows) == [0]
    np.testing.assert_array_equal(before[0], rows[0])


@pytest.mark.parametrize("layout", ["table", "older"])
def test_a_source_row_behind_a_soft_link_is_refused(recorded, tmp_path, layout):
    from attnflows_callback.fileio import UnsafeFileError

    run_dir = shutil.copytree(recorded[0], tmp_path / "run")
    if layout == "older":
        as_an_older_shard(shard_of(run_dir))
    linked = "source_rows/self/none" if layout == "table" else "mean/self/none/0"
    with h5py.File(shard_of(run_dir), "r+") as f:
        del f[linked]
        f[linked] = h5py.SoftLink("/" + linked.replace("none", "special_punct"))
    with pytest.raises(UnsafeFileError, match="SoftLink|not a hard link"):
        open_run(run_dir).source_rows(STEPS[-1], "self", {0: "none"})


def replace_table(f, values):
    del f["source_rows/self/none"]
    f["source_rows/self/none"] = values


@pytest.mark.parametrize("damage, message", [
    (lambda f: f["source_rows/self/none"].__setitem__((0, 0), np.nan), "row 0 must hold .* finite values"),
    (lambda f: f["source_rows/self/none"].__setitem__((1, 5), 0.5), "row 1 must hold .* then only NaN"),
    (lambda f: replace_table(f, np.zeros((3, 4), np.float32)), r"has shape \[3, 4\]; this run needs \[2, \d+\]"),
    (lambda f: replace_table(f, f["source_rows/self/none"][()].astype(np.float64)), "float64; a table of float32 rows"),
])
def test_a_damaged_table_of_source_rows_is_refused_with_what_is_wrong(recorded, tmp_path, damage, message):
    run_dir = shutil.copytree(recorded[0], tmp_path / "run")
    with h5py.File(shard_of(run_dir), "r+") as f:
        damage(f)
    with pytest.raises(ValueError, match=message):
        open_run(run_dir).source_rows(STEPS[-1], "self", {0: "none", 1: "none"})


def test_stored_head_metrics_equal_the_models_attention(recorded):
    run_dir, model = recorded
    run = open_run(run_dir)
    summary = run.summary(STEPS[-1], "self")
    for i, (text, pair) in enumerate([(LONG_TEXT, LONG_PAIR), (SHORT_TEXT, "fine")]):
        attention, _ = eager_forward(model, tokenizer(), text, pair)
        expected = analysis.head_metrics(attention["self"], run.tokens(i))
        for metric in step_products.METRICS:
            np.testing.assert_allclose(summary[f"head_{metric}"][i], expected[metric], atol=1e-4, err_msg=metric)
        np.testing.assert_array_equal(summary["head_pattern"][i], analysis.pattern_class(attention["self"]))


def test_the_view_head_mean_is_the_mean_of_the_per_head_view_empty_rows_included():
    rng = np.random.default_rng(3)
    attn = rng.dirichlet(np.ones(6), size=(2, 3, 6))
    attn[0, 1, 2] = [0.5, 0, 0, 0, 0, 0.5]  # all its mass on hidden targets: an empty row in the view
    tokens, ids = ["[CLS]", "soggy", "##ish", ",", "day", "[SEP]"], [None, 0, 0, 1, 2, None]
    for targets, (drop_special, drop_punctuation) in analysis.TARGET_SETS.items():
        keep = analysis.view_keep(tokens, ids, targets)
        for words in (False, True):
            view = analysis.apply_view(attn, tokens, ids, drop_special=drop_special,
                                       drop_punctuation=drop_punctuation, words=words)
            mean, hidden = analysis.view_head_mean(attn, None if targets == "none" else keep)
            if words:
                mean = analysis.merge_word_pieces(mean, ids)
            np.testing.assert_allclose(mean, view.attention.mean(axis=1), atol=1e-12, err_msg=targets)
            assert hidden == pytest.approx(float(np.mean(view.hidden_mass)), abs=1e-12)


def test_head_metrics_of_float32_attention_equal_the_float64_ones():
    attn = np.random.default_rng(4).dirichlet(np.ones(70) * 0.3, size=(2, 3, 70)).astype(np.float32)
    tokens = ["[CLS]", *[f"w{k}" for k in range(68)], "[SEP]"]
    stored = step_products.example_head_metrics(attn, tokens, 0)
    expected = analysis.head_metrics(attn.astype(np.float64), tokens)
    for metric in step_products.METRICS:
        np.testing.assert_allclose(stored[f"head_{metric}"], expected[metric], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(stored["head_pattern"], analysis.pattern_class(attn.astype(np.float64)))


def strip_products(run_dir, copy_dir):
    """A copy of the run whose shards hold no step products (as a run written before them)."""
    shutil.copytree(run_dir, copy_dir)
    for shard in (copy_dir / "attnflows" / "snapshots").glob("*.h5"):
        with h5py.File(shard, "r+") as f:
            del f["mean"]
            for name in list(f["summary/self"]):
                if name.startswith("head_"):
                    del f[f"summary/self/{name}"]
    return copy_dir


def test_the_plugin_answers_the_same_from_products_as_from_the_attention(recorded, tmp_path):
    from attnflows_tb import api, derived
    from attnflows_tb.display import Display
    from attnflows_tb.runs import AttentionCache, RunCache

    run_dir, _ = recorded
    bare_dir = strip_products(run_dir, tmp_path / "bare")
    with_products, without = RunCache().get(run_dir), RunCache().get(bare_dir)
    assert without.run.head_mean(0, STEPS[-1], "self", "none") is None
    cache = AttentionCache()
    assert derived.stored_mean(with_products, 0, STEPS[-1], "self", Display("special_punct", "tokens")) is None
    for display in (Display(), Display("special_punct", "words"), Display("special_punct", "tokens"),
                    Display("none", "words")):
        stored = derived.mean_shown(with_products, cache, 0, STEPS[-1], "self", display, warm=False)
        derived_here = derived.mean_shown(without, cache, 0, STEPS[-1], "self", display, warm=False)
        assert stored.labels == derived_here.labels
        tolerance = 4 * BOUND if display.units == "words" else 2 * BOUND
        np.testing.assert_allclose(stored.attention, derived_here.attention, atol=tolerance, err_msg=str(display))
        if stored.info is not None:
            assert {k: v for k, v in stored.info.items() if k != "hidden_mass"} == \
                {k: v for k, v in derived_here.info.items() if k != "hidden_mass"}
            assert stored.info["hidden_mass"] == pytest.approx(derived_here.info["hidden_mass"], abs=2e-3)
    heads = api.heads_impl("run", with_products, cache, step=STEPS[-1], example=0, stream="self")
    bare_heads = api.heads_impl("bare", without, cache, step=STEPS[-1], example=0, stream="self")
    assert heads["metrics"]["pattern"] == bare_heads["metrics"]["pattern"]
    for name in ("to_cls", "to_sep", "to_self", "previous", "distance", "confidence"):
        # Derived from the decoded codes, a metric carries their error (distance: up to T x 2e-3): the
        # stored ones were computed from the float attention (the test above holds them to 1e-4).
        np.testing.assert_allclose(heads["metrics"][name], bare_heads["metrics"][name], rtol=2e-2, atol=2e-2,
                                   err_msg=name)
    for drop_punctuation in (False, True):
        np.testing.assert_allclose(
            source_row(with_products.run, 0, STEPS[-1], drop_punctuation=drop_punctuation),
            source_row(without.run, 0, STEPS[-1], drop_punctuation=drop_punctuation), atol=1e-2)


def test_short_probes_and_reduced_runs_store_no_products(tmp_path):
    from tests.helpers import write_run

    short = open_run(write_run(tmp_path / "short", steps=(0,)))
    assert "head_cls" not in short.summary(0)
    with h5py.File(next((tmp_path / "short" / "attnflows" / "snapshots").glob("*.h5"))) as f:
        assert "mean" not in f
    record(tmp_path / "top_k", top_k=8)
    reduced = open_run(tmp_path / "top_k")
    assert reduced.head_mean(0, 0, "self", "none") is None and "head_cls" not in reduced.summary(0)


def test_a_damaged_product_is_refused_cleanly_and_the_view_is_derived_instead(recorded, tmp_path):
    from attnflows_tb import derived
    from attnflows_tb.display import Display
    from attnflows_tb.runs import AttentionCache, RunCache

    run_dir = shutil.copytree(recorded[0], tmp_path / "run")
    as_an_older_shard(shard_of(run_dir))  # its source rows are attributes, damaged here
    with h5py.File(shard_of(run_dir), "r+") as f:
        f["mean/self/special_punct/0"].attrs["units"] = "bogus"
        f["mean/self/none/0"].attrs["source_row"] = np.ones(10**4)  # wrong length and type
    run = open_run(run_dir)
    with pytest.raises(ValueError, match="units are 'bogus'"):
        run.head_mean(0, STEPS[-1], "self", "special_punct")
    with pytest.raises(ValueError, match="source row of float64 \\[10000\\]"):
        run.source_row(0, STEPS[-1], "self", "none")
    assert run.attention(0, STEPS[-1]).shape[0] == 2  # the attention itself still reads
    entry = RunCache().get(run_dir)
    shown = derived.mean_shown(entry, AttentionCache(), 0, STEPS[-1], "self", Display("special_punct", "words"),
                               warm=False)
    expected = open_run(recorded[0]).head_mean(0, STEPS[-1], "self", "special_punct").values
    np.testing.assert_allclose(shown.attention[:, 0], expected, atol=4 * BOUND)  # derived from the attention
