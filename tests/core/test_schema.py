"""schema.py is the one definition of the run format: what the writer writes is what it names, and docs/format.md maps to it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py

from attnflows_callback import schema
from attnflows_callback.recorder import AttentionRecorder
from tests.helpers import probe_set, tiny_model, tokenizer

FORMAT_MD = Path(__file__).resolve().parents[2] / "docs" / "format.md"


def test_a_recorded_run_holds_exactly_the_names_the_schema_defines(tmp_path):
    with AttentionRecorder(tiny_model("bert"), tokenizer(), probe_set(), tmp_path, tensorboard=False) as rec:
        rec.snapshot(0)
    data = tmp_path / schema.DATA_DIRNAME


    meta = json.loads((data / schema.RUN_JSON).read_text())
    assert set(schema.RUN_JSON_KEYS) <= set(meta) <= {*schema.RUN_JSON_KEYS, *schema.RUN_JSON_OPTIONAL}
    assert (meta["format"], meta["format_version"]) == (schema.FORMAT_NAME, schema.FORMAT_VERSION)
    assert json.loads((data / schema.STATUS_JSON).read_text())["status"] in schema.STATUSES
    with h5py.File(data / schema.PROBE_H5) as f:
        required = {name for name, needed in schema.PROBE_DATASETS.items() if needed}
        assert required <= set(f) <= {*schema.PROBE_DATASETS, schema.PROBE_MODEL_INPUTS}
        assert set(f.attrs) == set(schema.PROBE_ATTRS)
    shard = data / schema.SNAPSHOT_DIRNAME / schema.snapshot_filename(0)
    assert schema.SNAPSHOT_NAME.match(shard.name)
    with h5py.File(shard) as f:
        assert set(f.attrs) == set(schema.SHARD_ATTRS)  # no epoch: the snapshot was taken outside an epoch
        assert f[schema.attention_path("self", 0)].attrs[schema.SHAPE_ATTR].tolist()[:2] == [2, 4]
        assert schema.summary_path("self", "entropy") in f


def test_every_name_in_the_format_page_table_is_defined_in_the_schema_module():
    text = FORMAT_MD.read_text()
    table = text[text.index("| section of this page | in `attnflows_callback/schema.py` |"):]
    table = table[:table.index("\n\n")]
    names = re.findall(r"`([A-Za-z_]+)`", table.split("\n", 2)[2])
    assert len(names) > 20
    missing = [name for name in names if not hasattr(schema, name)]
    assert not missing
