"""A ~1B Llama-style decoder at 512 tokens: what `top_k` and `rows="cls"` save against a full snapshot.

The model is built from a random config (no download): hidden 2048, 18 layers, 32 query heads
sharing 8 key/value heads (grouped-query attention), intermediate 6144, vocabulary 32000, the
LM head untied: 1.00B parameters (TinyLlama's shape, with 18 layers instead of 22). The probe is one example (``--examples``) of exactly 512
tokens (``--tokens``). Four recorders share the model, one per recording mode:

- ``full``: every row of every head, the default encoding;
- ``top_k``: the ``--top-k`` largest weights of each row (default 10: traces exact at tau >= 0.1);
- ``rows="cls"``: the classification position's row only (the last real token of a decoder);
- ``rows="cls"`` and ``top_k`` together.

Per mode, measured in paired rounds (every mode once per round, in turn), in one process:

- the snapshot on the training thread (`AttentionRecorder.snapshot`: eager probe pass, hooks,
  reduction on the model's device, copy to the host, enqueue);
- the whole snapshot until it is on disk (the same plus `flush()`: summaries, encoding, HDF5);
- the shard's size on disk.

Each is printed as a ratio to the full snapshot measured in the same rounds, and the full
snapshot once more as a ratio to the bare eager probe forward (`output_attentions=True`, the
least any attention capture must do). Reduced snapshots are also checked against the full one
(the kept weights must be the full snapshot's own, within the encoding's error), so a
"cheaper" mode cannot be cheaper by recording something else.

It needs about 2.5 GiB of free memory per billion parameters in bfloat16 plus 4 GiB for the
attention (float32: twice the weights), checked against /proc/meminfo first: with less, it
prints why and exits 0 without figures.

Run:  python benchmarks/bench_big_model.py                   # CPU, bfloat16, 3 rounds
      python benchmarks/bench_big_model.py --device cuda     # on a GPU (bench_gpu.py's machine)
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

from _common import Figure, median, report

CONFIG = dict(hidden_size=2048, num_hidden_layers=18, num_attention_heads=32, num_key_value_heads=8,
              intermediate_size=6144, vocab_size=32000, max_position_embeddings=1024, tie_word_embeddings=False,
              pad_token_id=0, bos_token_id=101, eos_token_id=102)
MODES = {  # name -> recorder options (top_k filled in from --top-k)
    "full": {},
    "top_k": {"top_k": None},
    'rows="cls"': {"rows": "cls"},
    'rows="cls" + top_k': {"rows": "cls", "top_k": None},
}
ATTENTION_HEADROOM_GIB = 4.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"],
                        help="the model's weights (default bfloat16: half the memory; the recorded attention is float32 either way)")
    parser.add_argument("--examples", type=int, default=1, help="probe examples (default 1)")
    parser.add_argument("--tokens", type=int, default=512, help="tokens per probe example (default 512)")
    parser.add_argument("--top-k", type=int, default=10, help="k of the top_k modes (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="paired timing rounds after one warm-up (default 3)")
    parser.add_argument("--layers", type=int, default=CONFIG["num_hidden_layers"],
                        help="decoder layers (default 18: 1.00B parameters); fewer for a quick check")
    args = parser.parse_args(argv)
    for name in ("examples", "tokens", "top_k", "rounds", "layers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def available_gib() -> float | None:
    """MemAvailable from /proc/meminfo, in GiB (None where there is no /proc/meminfo)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def parameter_count(config) -> int:
    """Parameters of ``LlamaForCausalLM(config)``, counted without building it."""
    h, i, v, layers = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h  # q, o; k, v; gate, up, down; two norms
    return layers * per_layer + v * h * (1 if config.tie_word_embeddings else 2) + h


def probe_texts(tokenizer, examples: int, tokens: int) -> list[str]:
    """``examples`` texts of at least ``tokens`` tokens each, from the bundled probe sentences."""
    from _common import bundled_probe

    sentences = list(bundled_probe().texts)
    texts = []
    for k in range(examples):
        words, at = [], k
        while len(tokenizer(" ".join(words))["input_ids"]) < tokens:
            words.append(sentences[at % len(sentences)])
            at += 1
        texts.append(" ".join(words))
    return texts


def shard_bytes(run_dir: str, step: int) -> int:
    from attnflows_callback.schema import DATA_DIRNAME, SNAPSHOT_DIRNAME, snapshot_filename

    return (Path(run_dir) / DATA_DIRNAME / SNAPSHOT_DIRNAME / snapshot_filename(step)).stat().st_size


def kept_equals_full(full_run: str, reduced_run: str, step: int, rows: str, top_k: int | None) -> float:
    """Max |reduced - the same weights of the full snapshot| over every example (the encoding's error bound)."""
    from attnflows_callback import open_run

    full, reduced = open_run(full_run), open_run(reduced_run)
    worst = 0.0
    for i in range(full.num_examples):
        every_layer_a, every_layer_b = full.attention(i, step), reduced.attention(i, step)
        for a, b in zip(every_layer_a, every_layer_b):  # a layer at a time: a few temporaries of [H, T, T]
            worst = max(worst, _layer_error(a, b, rows, top_k))
    return worst


def _layer_error(a, b, rows: str, top_k: int | None) -> float:
    import numpy as np

    if rows == "cls":
        a = a[:, -1:, :]  # a decoder's classification position: the last real token
    if top_k is None:
        return float(np.abs(a - b).max())
    kept = b > 0
    worst = float(np.abs(a - b)[kept].max())
    # Every weight that top_k dropped is at most the smallest kept one of its row (ties aside).
    smallest_kept = np.where(kept, b, np.inf).min(axis=-1, keepdims=True)
    dropped = np.where(kept, -np.inf, a)
    return max(worst, float(np.maximum(dropped - smallest_kept, 0).max()))


def run(args) -> list[Figure]:
    import torch
    import transformers as tf

    from attnflows_callback import AttentionRecorder, ProbeSet
    from attnflows_callback.encodings import DEFAULT_ENCODING, get_encoding
    from tests.helpers import tokenizer

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu, or on a machine with a GPU")
        return []
    dtype = getattr(torch, args.dtype)
    config = tf.LlamaConfig(**{**CONFIG, "num_hidden_layers": args.layers})
    n_params = parameter_count(config)
    weights_gib = n_params * torch.finfo(dtype).bits / 8 / 2**30
    attention_gib = args.examples * config.num_hidden_layers * config.num_attention_heads * args.tokens**2 * 4 / 2**30
    needed = weights_gib + max(ATTENTION_HEADROOM_GIB, 12 * attention_gib)  # 12: measured peak 9.8 GiB at 1.00B
    free = available_gib()
    if device.type == "cpu" and free is not None and free < needed:
        print(f"skipped: this benchmark needs about {needed:.1f} GiB of free memory, {free:.1f} GiB is available; "
              "free some, or pass --layers 4 for a smaller model")
        return []

    torch.manual_seed(0)
    config._attn_implementation = "sdpa"
    model = tf.LlamaForCausalLM(config).to(device=device, dtype=dtype)
    model.eval()
    assert sum(p.numel() for p in model.parameters()) == n_params
    tok = tokenizer()
    probe = ProbeSet(probe_texts(tok, args.examples, args.tokens)).tokenize(tok, max_length=args.tokens)
    assert all(len(ids) == args.tokens for ids in probe.input_ids)
    inputs = {"input_ids": torch.tensor(probe.input_ids, device=device)}
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def bare_forward():
        model.set_attn_implementation("eager")
        try:
            with torch.no_grad():
                out = model(**inputs, output_attentions=True)
                torch.stack(out.attentions).float().cpu()
            sync()
        finally:
            model.set_attn_implementation("sdpa")

    encoding = get_encoding(DEFAULT_ENCODING)
    modes = {name: {k: (args.top_k if k == "top_k" else v) for k, v in options.items()} for name, options in MODES.items()}
    thread = {name: [] for name in modes}
    total = {name: [] for name in modes}
    disk = {name: [] for name in modes}
    bare = []
    with tempfile.TemporaryDirectory() as root:
        dirs = {name: os.path.join(root, f"mode{k}") for k, name in enumerate(modes)}
        recorders = {name: AttentionRecorder(model, tok, probe, dirs[name], tensorboard=False, batch_size=1,
                                             **options) for name, options in modes.items()}
        try:
            for step in range(args.rounds + 1):  # step 0 warms up (and is every later summary's reference)
                start = time.perf_counter()
                bare_forward()
                if step:
                    bare.append(time.perf_counter() - start)
                for name, recorder in recorders.items():
                    gc.collect()
                    start = time.perf_counter()
                    recorder.snapshot(step)
                    sync()
                    queued = time.perf_counter()
                    recorder.flush()
                    done = time.perf_counter()
                    if step:
                        thread[name].append(queued - start)
                        total[name].append(done - start)
                        disk[name].append(shard_bytes(dirs[name], step))
                print(f"round {step} done: " + ", ".join(f"{n} {total[n][-1]:.1f} s" for n in modes if total[n]),
                      flush=True)
        finally:
            for recorder in recorders.values():
                recorder.close()
        recorders.clear()  # their step-0 references go before the check reads two snapshots
        gc.collect()
        errors = {name: kept_equals_full(dirs["full"], dirs[name], 1, options.get("rows", "all"), options.get("top_k"))
                  for name, options in modes.items() if name != "full"}

    where = f"{device.type}" + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else "")
    model_name = (f"{n_params / 1e9:.2f}B Llama-style decoder ({config.num_hidden_layers} layers, "
                  f"{config.num_attention_heads} heads sharing {config.num_key_value_heads} KV heads), "
                  f"{args.examples} x {args.tokens} tokens, {args.dtype} on {where}")
    full_thread, full_total, full_disk = median(thread["full"]), median(total["full"]), median(disk["full"])
    weights = args.examples * config.num_hidden_layers * config.num_attention_heads * args.tokens**2
    figures = [
        Figure("big_model", f"full snapshot on the training thread, {model_name}", full_thread, "s", median(bare),
               "bare eager probe forward", "<= 1.10x", full_thread / median(bare) <= 1.10,
               f"{len(bare)} paired rounds"),
    ]
    # Goals from docs/scaling.md's estimates: top_k=10 keeps 10 of 512 weights a row (disk <= 0.1x), rows="cls" one
    # row of 512 (disk <= 0.01x); the probe forward is paid in full by every mode, so time only has to halve.
    goals = {"top_k": ((0.5, 0.1)), 'rows="cls"': (0.5, 0.01), 'rows="cls" + top_k': (0.5, 0.01)}
    for name in modes:
        label = name if name == "full" else f"{name}" + (f" (k={args.top_k})" if "top_k" in name else "")
        if name == "full":
            figures.append(Figure("big_model", "full snapshot until on disk (probe pass, summaries, encoding, HDF5)",
                                  full_total, "s", full_thread, "full snapshot on the training thread", "", None,
                                  f"{encoding.name!r} encoding"))
            figures.append(Figure("big_model", "disk per snapshot, full", full_disk / 2**20, "MiB", None, "", "", None,
                                  f"{full_disk / weights:.3f} B/weight over {weights:.3g} weights, {encoding.name!r}"))
            continue
        time_bound, disk_bound = goals[name]
        note = f"kept weights equal the full snapshot's within {errors[name]:.2g}"
        figures.append(Figure("big_model", f"snapshot on the training thread, {label}", median(thread[name]), "s",
                              full_thread, "full snapshot, same rounds", "", None, note))
        figures.append(Figure("big_model", f"snapshot until on disk, {label}", median(total[name]), "s", full_total,
                              "full snapshot until on disk, same rounds", f"<= {time_bound}x",
                              median(total[name]) / full_total <= time_bound))
        figures.append(Figure("big_model", f"disk per snapshot, {label}", median(disk[name]) / 2**20, "MiB",
                              full_disk / 2**20, "full snapshot", f"<= {disk_bound}x",
                              median(disk[name]) / full_disk <= disk_bound))
    return figures


if __name__ == "__main__":
    report(run(parse_args()))
