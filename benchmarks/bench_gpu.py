"""GPU: training overhead and snapshot cost under bf16 autocast with sdpa training and an eager probe pass.

Two models built from random configs (no downloads): a BERT-base-sized encoder classifier
(12 layers, 12 heads, 768 hidden) and a ~1B-parameter Llama-style decoder classifier
(16 layers, 16 heads, 2048 hidden, GQA with 4 KV heads). Training runs under
`torch.autocast("cuda", dtype=torch.bfloat16)` with the model's sdpa (flash where available)
attention; snapshots switch the probe pass to eager. Paired A/B/A/B rounds in one process:

- training wall time with snapshots every 10 steps vs without (ratio);
- one snapshot on the training thread vs the bare eager probe forward (ratio).

Without CUDA it prints why and exits 0: CPU figures are the ones CI reproduces.

Run: python benchmarks/bench_gpu.py
"""

from __future__ import annotations

import tempfile
import time

from _common import Figure, bundled_probe, median, padded_batch, report

STEPS = 40
EVERY = 10
ROUNDS = 3


def models():
    import transformers as tf

    yield "BERT-base-sized encoder", tf.BertForSequenceClassification(
        tf.BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                      vocab_size=30522, num_labels=2))
    yield "~1B Llama-style decoder", tf.LlamaForSequenceClassification(
        tf.LlamaConfig(hidden_size=2048, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=4,
                       intermediate_size=5632, vocab_size=30522, max_position_embeddings=512, num_labels=2,
                       pad_token_id=0))


def run() -> list[Figure]:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark needs one (see docs/benchmarks.md)")
        return []

    from attnflows_callback import AttentionRecorder
    from tests.helpers import tokenizer

    device = torch.device("cuda")
    gpu = torch.cuda.get_device_name(0)
    tok = tokenizer()
    probe = bundled_probe().tokenize(tok)
    texts = list(bundled_probe().texts) * 4
    figures = []
    for name, model in models():
        n_params = sum(p.numel() for p in model.parameters()) / 1e9
        model.to(device)
        model.config._attn_implementation = "sdpa"
        batch = tok(texts[:32], padding=True, return_tensors="pt").to(device)
        labels = torch.randint(0, 2, (32,), device=device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

        def train(recorder=None, step0=0):
            model.train()
            torch.cuda.synchronize()
            start = time.perf_counter()
            for step in range(STEPS):
                if recorder is not None and step % EVERY == 0:
                    recorder.snapshot(step0 + step)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = model(**batch, labels=labels).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            return time.perf_counter() - start

        with tempfile.TemporaryDirectory() as run_dir:
            recorder = AttentionRecorder(model, tok, probe, run_dir, tensorboard=False)
            train()  # warm-up: kernels, allocator, autotuning
            plain, recorded, offset = [], [], 0
            for _ in range(ROUNDS):
                plain.append(train())
                recorded.append(train(recorder, offset))
                offset += STEPS
                recorder.flush()
            figures.append(Figure("gpu", f"training wall time with snapshots every {EVERY} steps, {name} "
                                  f"({n_params:.2f}B params, bf16 autocast, sdpa), {gpu}",
                                  median(recorded), "s", median(plain), "same training without recording",
                                  "<= 1.03x", median(recorded) / median(plain) <= 1.03))

            eager = type(model)(model.config).to(device)
            eager.load_state_dict(model.state_dict())
            eager.set_attn_implementation("eager")
            eager.eval()
            rows = [probe.input_ids[i] for i in range(len(probe))]

            def bare():
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                    for start in range(0, len(rows), 16):
                        out = eager(**padded_batch(rows[start:start + 16], device), output_attentions=True)
                        torch.stack(out.attentions).float().cpu()
                torch.cuda.synchronize()

            def snap():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    recorder.snapshot(offset + len(snap_times) + 1)
                torch.cuda.synchronize()

            snap_times, bare_times = [], []
            for _ in range(5):
                t = time.perf_counter(); bare(); bare_times.append(time.perf_counter() - t)
                t = time.perf_counter(); snap(); snap_times.append(time.perf_counter() - t)
                recorder.flush()
            recorder.close()
            figures.append(Figure("gpu", f"snapshot on the training thread, {name}, {gpu}", median(snap_times) * 1e3,
                                  "ms", median(bare_times) * 1e3, "bare eager probe forward", "<= 1.10x",
                                  median(snap_times) / median(bare_times) <= 1.10))
        del model, optimizer, recorder
        torch.cuda.empty_cache()
    return figures


if __name__ == "__main__":
    report(run())
