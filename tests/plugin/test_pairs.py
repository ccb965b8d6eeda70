"""Sentence-pair runs through TensorBoard's own app: both segments, each token's segment, format notes."""

import json

import h5py
from werkzeug.test import Client

from attnflows_callback import AttentionRecorder, ProbeSet
from tests.helpers import tiny_model, tokenizer
from tests.plugin.conftest import PREFIX, make_app
from tests.truth import HYPOTHESES, PREMISES


def test_probe_route_gives_both_segments_and_the_segment_of_each_token_and_runs_carry_format_notes(tmp_path):
    for name in ("current", "old"):
        with AttentionRecorder(tiny_model("bert"), tokenizer(), ProbeSet(PREMISES, HYPOTHESES), tmp_path / name,
                               tensorboard=False) as recorder:
            recorder.snapshot(0)
    meta_path = tmp_path / "old" / "attnflows" / "run.json"  # as format 1 wrote it
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "format_version": 1}))
    with h5py.File(tmp_path / "old" / "attnflows" / "probe.h5", "a") as f:
        del f["model_inputs"], f["sequence_ids"]
    client = Client(make_app(tmp_path, multiplexer=False))
    runs = {r["run"]: r for r in client.get(f"{PREFIX}/runs").json["runs"]}
    assert runs["current"]["notes"] == []
    assert len(runs["old"]["notes"]) == 1 and "segment-less attention" in runs["old"]["notes"][0]
    example = client.get(f"{PREFIX}/probe", query_string={"run": "current"}).json["examples"][1]
    assert (example["text"], example["text_pair"]) == (PREMISES[1], HYPOTHESES[1])
    expected = [-1 if s is None else s for s in tokenizer()(PREMISES[1], HYPOTHESES[1]).sequence_ids()]
    assert example["sequence_ids"] == expected and len(expected) == len(example["tokens"])
    old = client.get(f"{PREFIX}/probe", query_string={"run": "old"}).json["examples"][1]
    assert old["sequence_ids"] is None and old["text_pair"] == HYPOTHESES[1]
