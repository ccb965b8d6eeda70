"""RecorderOptions: one definition of the recording options, shared by the recorder, both callbacks and the timeline."""

from __future__ import annotations

import ast
import inspect

import pytest

from attnflows_callback import options as options_module
from attnflows_callback.hf import AttentionFlowsTrainerCallback
from attnflows_callback.lightning import AttentionFlowsCallback
from attnflows_callback.options import RECORDER_OPTION_NAMES, RecorderOptions
from tests.helpers import probe_set


def test_every_option_has_its_own_docstring():
    tree = ast.parse(inspect.getsource(options_module))
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "RecorderOptions").body
    documented = [field.target.id for field, doc in zip(body, body[1:])
                  if isinstance(field, ast.AnnAssign) and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)]
    assert documented == list(RECORDER_OPTION_NAMES)
    assert "health_warnings" in documented


@pytest.mark.parametrize("callback_class", [AttentionFlowsCallback, AttentionFlowsTrainerCallback])
def test_both_callbacks_take_every_option_and_pass_it_to_the_recorder(callback_class):
    signature = inspect.signature(callback_class)
    for name in RECORDER_OPTION_NAMES:
        assert signature.parameters[name].default == getattr(RecorderOptions(), name), name
    callback = callback_class(probe_set(), health_warnings=True, layers=[1, 0], encoding="float16")
    assert callback.timeline.recorder_options == RecorderOptions(health_warnings=True, layers=[0, 1],
                                                                 encoding="float16").as_kwargs()


@pytest.mark.parametrize("callback_class", [AttentionFlowsCallback, AttentionFlowsTrainerCallback])
def test_a_wrong_type_is_a_type_error_and_a_wrong_value_a_value_error(callback_class):
    with pytest.raises(TypeError, match="health_warnings must be True or False, got 'yes'"):
        callback_class(probe_set(), health_warnings="yes")
    with pytest.raises(TypeError, match="batch_size must be an integer >= 1, got '4'"):
        callback_class(probe_set(), batch_size="4")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        callback_class(probe_set(), batch_size=0)
    with pytest.raises(ValueError, match=r"rows must be one of"):
        callback_class(probe_set(), rows="first")


def test_hf_state_saved_before_health_warnings_existed_still_rebuilds_the_callback():
    args = AttentionFlowsTrainerCallback(probe_set()).state()["args"]
    assert args["health_warnings"] is False
    del args["health_warnings"]  # a checkpoint written by an older attnflows
    rebuilt = AttentionFlowsTrainerCallback(**args)
    assert rebuilt.timeline.options == RecorderOptions()
    assert RecorderOptions.from_kwargs({**args, "unknown": 1}) == RecorderOptions()
