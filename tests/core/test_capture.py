"""One probe forward pass: real attention from every model family, with nothing left changed."""

import copy
import inspect
import multiprocessing as mp
import pickle

import numpy as np
import pytest
import torch

from attnflows_callback import AttentionCaptureError, ProbeSet, capture_probe
from tests.helpers import FAMILIES, probe_set, tiny_model, tokenizer

STREAMS = {"t5": ("encoder", "decoder", "cross"), "bart": ("encoder", "decoder", "cross")}


def direct_eager_attention(model, input_ids, **tokenizer_inputs):
    """The reference: one unpadded example through an eager copy with output_attentions=True.

    ``tokenizer_inputs`` are the tokenizer's other outputs; those the model's forward names
    are fed too (segment ids), as the transformers Trainer feeds dataset columns.
    """
    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    ids = torch.tensor([input_ids])
    named = inspect.signature(reference.forward).parameters
    kwargs = {k: torch.tensor([v]) for k, v in tokenizer_inputs.items() if k in named and k != "attention_mask"}
    if reference.config.is_encoder_decoder:
        start = reference.config.decoder_start_token_id
        kwargs["decoder_input_ids"] = torch.tensor([[start] + input_ids[:-1]])
    with torch.no_grad():
        out = reference(input_ids=ids, output_attentions=True, **kwargs)
    if reference.config.is_encoder_decoder:
        parts = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
    else:
        parts = {"self": out.attentions}
    return {k: torch.stack(v)[:, 0].numpy() for k, v in parts.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_model_records_real_attention_equal_to_a_direct_eager_forward(family):
    model = tiny_model(family, attn_implementation="sdpa")
    probe = probe_set().tokenize(tokenizer())
    capture = capture_probe(model, probe, batch_size=4)  # padded batches
    assert capture.streams == STREAMS.get(family, ("self",))
    for i in (0, 2, 5):
        encoded = tokenizer()(probe.probe_set.texts[i])
        assert list(encoded["input_ids"]) == probe.input_ids[i]
        expected = direct_eager_attention(model, **encoded)
        for stream, weights in expected.items():
            got = capture.attention[stream][i]
            assert got.shape == weights.shape == (2, 4, len(probe.input_ids[i]), len(probe.input_ids[i]))
            np.testing.assert_allclose(got, weights, atol=1e-5)
            np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-4)
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("family", ["bert", "gpt2", "t5"])
def test_batch_size_does_not_change_the_result(family):
    model = tiny_model(family)
    probe = probe_set().tokenize(tokenizer())
    one, many = capture_probe(model, probe, batch_size=1), capture_probe(model, probe, batch_size=16)
    for stream in one.streams:
        for a, b in zip(one.attention[stream], many.attention[stream]):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_logits_for_classifiers_and_none_for_seq2seq():
    probe = probe_set().tokenize(tokenizer())
    assert capture_probe(tiny_model("bert"), probe).logits.shape == (6, 2)
    assert capture_probe(tiny_model("t5"), probe).logits is None


def test_probe_pass_restores_mode_grad_rng_and_leaves_gradients_alone():
    model = tiny_model("bert")
    model.train()
    model.bert.embeddings.eval()  # a user's deliberately frozen submodule stays as it was
    flags = {name: m.training for name, m in model.named_modules()}
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    grads = [p.grad.clone() for p in model.parameters()]
    params = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    capture_probe(model, probe_set().tokenize(tokenizer()))
    assert torch.equal(torch.rand(3), expected_draw)
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert torch.is_grad_enabled()
    assert model.config._attn_implementation == "sdpa"
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))


def test_bf16_autocast_sdpa_model_records_real_attention():
    model = tiny_model("llama")
    probe = probe_set().tokenize(tokenizer())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        capture = capture_probe(model, probe)
    weights = capture.attention["self"][2]
    assert weights.dtype == np.float32 and np.isfinite(weights).all()
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=2e-2)
    assert np.triu(weights[0, 0], 1).max() == 0.0  # causal: real attention, not a placeholder


def _capture_in_fresh_process(payload, queue):
    model, probe = pickle.loads(payload)
    capture = capture_probe(model, probe)
    queue.put({s: [a.shape for a in v] for s, v in capture.attention.items()})


def test_model_unpickled_in_a_fresh_process_records_attention():
    # As under Lightning's ddp_spawn: transformers' per-instance capture registry is empty there.
    model = tiny_model("bert")
    probe = probe_set().tokenize(tokenizer())
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_capture_in_fresh_process, args=(pickle.dumps((model, probe)), queue))
    process.start()
    shapes = queue.get(timeout=120)
    process.join(timeout=60)
    assert process.exitcode == 0
    assert shapes["self"][0] == (2, 4, len(probe.input_ids[0]), len(probe.input_ids[0]))


def test_a_model_without_attention_gets_an_error_naming_its_class():
    class NoAttention(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(AttentionCaptureError, match="NoAttention holds no Hugging Face PreTrainedModel"):
        capture_probe(NoAttention(), probe_set().tokenize(tokenizer()))


def test_model_found_inside_a_wrapper():
    wrapper = torch.nn.ModuleDict({"backbone": tiny_model("bert")})
    capture = capture_probe(wrapper, ProbeSet(["hello world"]).tokenize(tokenizer()))
    assert capture.attention["self"][0].shape == (2, 4, 4, 4)


def test_head_importance_equals_the_gradient_of_a_head_mask_and_leaves_grads_alone():
    # Michel et al. (2019): I_h = |dL/dxi_h| for a mask xi_h scaling head h's output.
    model = tiny_model("bert")
    probe = probe_set().tokenize(tokenizer())
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    capture = capture_probe(model, probe, labels=[0, 1, 1, 1, 1, 1], batch_size=2)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in model.parameters())
    importance = capture.importance["self"]
    assert importance.shape == (6, 2, 4)
    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    mask = torch.ones(2, 4, requires_grad=True)

    def masked(layer):
        def hook(module, args, output):
            context = output[0]  # [B, T, heads * head_dim]: head h is slice h
            scale = mask[layer].repeat_interleave(context.shape[-1] // 4)
            return (context * scale, *output[1:])
        return hook

    for layer, block in enumerate(reference.bert.encoder.layer):
        block.attention.self.register_forward_hook(masked(layer))
    for i in (0, 3):
        out = reference(input_ids=torch.tensor([probe.input_ids[i]]))
        loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([[0, 1, 1, 1, 1, 1][i]]), reduction="sum")
        (grad,) = torch.autograd.grad(loss, mask)
        np.testing.assert_allclose(importance[i], grad.abs().numpy(), rtol=1e-4, atol=1e-6)


def test_no_head_importance_without_labels():
    assert capture_probe(tiny_model("bert"), probe_set().tokenize(tokenizer())).importance is None
