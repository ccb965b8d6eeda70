"""The bundled sentence-pair task (examples/data/make_entailment.py) and a pair run recorded from it.

The generator is the spec of the data: it is deterministic, the files on disk are its output,
every split is balanced per phenomenon and label, and no probe pair is trained on. Its labels
are checked while it generates (every pair is model-checked over all worlds of its atoms), so
regenerating the files here also re-runs those checks.
"""

import importlib.util
import json
import sys
from collections import Counter

import pytest

from attnflows_callback import open_run
from tests.examples.conftest import EXAMPLES, run_script, tiny_options

DATA = EXAMPLES / "data"
SPLITS = {"probe": 60, "dev": 400, "train": 2000}


def import_generator():
    name = "attnflows_make_entailment"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DATA / "make_entailment.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def records(split):
    lines = (DATA / f"entailment_{split}.jsonl").read_text(encoding="ascii").splitlines()
    return [json.loads(line) for line in lines]


def test_generator_is_deterministic_and_the_files_are_its_output():
    generator = import_generator()
    first, second = generator.render(generator.make_all()), generator.render(generator.make_all())
    assert first == second
    assert sorted(first) == ["entailment_dev.jsonl", "entailment_label_names.json", "entailment_probe.jsonl",
                             "entailment_train.jsonl"]
    for name, content in first.items():
        assert (DATA / name).read_text(encoding="ascii") == content, f"{name} is stale: run make_entailment.py"


def test_every_split_is_balanced_per_phenomenon_and_label():
    generator = import_generator()
    assert json.loads((DATA / "entailment_label_names.json").read_text()) == ["entailment", "contradiction"]
    for split, size in SPLITS.items():
        examples = records(split)
        assert len(examples) == size
        counts = Counter((e["phenomenon"], e["label"]) for e in examples)
        assert set(counts) == {(p, label) for p in generator.PHENOMENA for label in (0, 1)}
        assert len(set(counts.values())) == 1, counts  # the same count for every (phenomenon, label)


def test_pairs_have_both_segments_and_their_cue_words():
    for split in SPLITS:
        for e in records(split):
            assert e["text"] and e["text_pair"] and e["text"] != e["text_pair"]
            assert set(e) == {"text", "text_pair", "label", "phenomenon", "case", "premise_cues", "hypothesis_cues"}
            generator = import_generator()
            assert all(c in generator.words_of(e["text"]) for c in e["premise_cues"]), e
            assert all(c in generator.words_of(e["text_pair"]) for c in e["hypothesis_cues"]), e


def test_no_probe_or_dev_pair_is_trained_on():
    key = import_generator().pair_key
    train = {key(e) for e in records("train")}
    assert not {key(e) for e in records("probe")} & train
    assert not {key(e) for e in records("dev")} & train


def test_negation_mismatch_alone_does_not_solve_it():
    """Guessing "contradiction" iff exactly one sentence holds a negator is far from enough."""
    generator = import_generator()
    train = records("train")
    hits = sum(generator.negation_mismatch_baseline(e) == e["label"] for e in train) / len(train)
    assert 0.5 < hits < 0.75, hits


def test_the_model_checker_tells_entailment_from_contradiction_and_neutral():
    g = import_generator()
    event = g.EVENTS[0]
    did = g.event_clause(None, "the chef", event, "the soup", negated=False, time="on Monday", say_time=True)
    did_at_all = g.event_clause(None, "the chef", event, "the soup", negated=False, time="on Monday", say_time=False)
    assert g.entailment_relation(did, did_at_all) == "entailment"
    assert g.entailment_relation(did_at_all, did) == "neutral"  # cooking it some time is not cooking it on Monday
    hot = g.state_clause("soup", ("hot", "cold"), "hot", contradictory=False)
    not_cold = g.state_clause("soup", ("hot", "cold"), "cold", contradictory=False, negated=True)
    cold = g.state_clause("soup", ("hot", "cold"), "cold", contradictory=False)
    assert g.entailment_relation(hot, not_cold) == "entailment"
    assert g.entailment_relation(hot, cold) == "contradiction"
    assert g.entailment_relation(not_cold, hot) == "neutral"  # lukewarm soup is neither


def test_pair_run_records_both_segments_end_to_end(tiny_model_dir, tmp_path):
    done = run_script(sys.executable, EXAMPLES / "plain_loop.py", *tiny_options(tiny_model_dir, tmp_path),
                      "--task", "entailment")
    (run_dir,) = sorted(p.parent.parent for p in tmp_path.rglob("attnflows/run.json"))  # the TensorBoard run
    run = open_run(run_dir)
    probe = records("probe")
    assert run_dir.name.startswith("plain_loop-entailment-")
    assert run.steps.tolist() == [0, 2, 3] and run.status["status"] == "finished"
    assert run.texts == [e["text"] for e in probe] and run.text_pairs == [e["text_pair"] for e in probe]
    assert run.labels == [e["label"] for e in probe] and run.label_names == ["entailment", "contradiction"]
    assert run.meta["hparams"]["dataset"] == "bundled:entailment"
    tokens = run.tokens(0)
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2  # encoded as a pair, not as one sentence
    assert "dev accuracy:" in done.stdout


def test_task_cannot_be_combined_with_a_dataset(capsys):
    from tests.examples.test_examples import import_common

    common = import_common()
    with pytest.raises(SystemExit):
        common.parse_args(common.parser("t"), ["--task", "entailment", "--dataset", "x.csv"])
    assert "--task entailment" in capsys.readouterr().err


def test_cross_segment_script_measures_a_pair_run(tiny_model_dir, tmp_path):
    run_script(sys.executable, EXAMPLES / "plain_loop.py", *tiny_options(tiny_model_dir, tmp_path / "runs"),
               "--task", "entailment")
    (run_dir,) = sorted(p.parent.parent for p in (tmp_path / "runs").rglob("attnflows/run.json"))
    done = run_script(sys.executable, EXAMPLES / "cross_segment_attention.py", run_dir, "--json", tmp_path / "c.json")
    assert "per layer, mean over heads and examples: step 0 -> step 3" in done.stdout
    result = json.loads((tmp_path / "c.json").read_text())["result"]
    assert set(result) == {"all", *import_generator().PHENOMENA}
    layers = result["all"]["0"]["layers"]
    assert len(layers["cls_to_premise"]) == 2  # the tiny model's layers
    for name in ("cls_to_premise", "cls_to_hypothesis", "hypothesis_to_premise", "cue_share"):
        assert all(0.0 < v < 1.0 for v in layers[name]), (name, layers[name])
    rollout = result["all"]["3"]["rollout"]
    assert abs(rollout["premise"] + rollout["hypothesis"] + rollout["special"] - 1.0) < 1e-6


def test_cross_segment_script_refuses_a_single_sentence_run(tmp_path, capsys):
    from attnflows_callback import AttentionRecorder, ProbeSet
    from tests.helpers import tiny_model, tokenizer

    with AttentionRecorder(tiny_model("bert"), tokenizer(), ProbeSet(["the soup was hot"]), tmp_path) as recorder:
        recorder.snapshot(0)
    spec = importlib.util.spec_from_file_location("attnflows_cross_segment", EXAMPLES / "cross_segment_attention.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_info:
        script.main([str(tmp_path)])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "not a sentence-pair run" in error and "--task entailment" in error
