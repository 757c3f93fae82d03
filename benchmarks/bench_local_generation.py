"""Local generation throughput: TextGenerator (transformers backend) vs the llama.cpp server.

Same GGUF (the embedded SmolLM2-135M-Instruct Q4_1), same machine, same prompts, same sampling
(temperature 0.8, top_p 0.95), max 64 new tokens; new tokens are the tokens actually generated.
  - llama.cpp server, single stream: requests one after another over HTTP (its best case; it serves one
    request at a time).
  - llama-cpp-python in process (``Llama.create_chat_completion``), single stream: llama.cpp without
    the server, the stronger baseline.
  - bare transformers ``generate`` at batch B (reference for our overhead).
  - TextGenerator inside Dataset.map, backend batch_size B (cache off), float32 (default) and bfloat16.
Runs alternate; medians of --runs.

    python benchmarks/bench_local_generation.py --prompts 128 --batches 32 64 128 --runs 2
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

import _common

LABELS = ["positive", "negative"]
STYLES = ["calm", "intense", "funny", "dry", "nostalgic", "sarcastic", "poetic", "technical"]


def prompts(n: int) -> list[str]:
    return [f"Write a {LABELS[i % 2]} movie review, {STYLES[(i // 2) % len(STYLES)]} in tone, about film #{i}."
            for i in range(n)]


def llama_server_tps(url: str, texts: list[str], max_new: int) -> float:
    toks, t0 = 0, time.perf_counter()
    for i, t in enumerate(texts):
        body = {"messages": [{"role": "user", "content": t}], "max_tokens": max_new, "temperature": 0.8,
                "top_p": 0.95, "seed": i}
        req = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        toks += json.loads(urllib.request.urlopen(req).read())["usage"]["completion_tokens"]
    return toks / (time.perf_counter() - t0)


def llama_inproc_tps(model_path: str, texts: list[str], max_new: int) -> float:
    from llama_cpp import Llama

    m = Llama(model_path=model_path, n_ctx=2048, n_threads=2, verbose=False)
    try:
        m.create_chat_completion([{"role": "user", "content": texts[0]}], max_tokens=4)  # warm-up
        toks, t0 = 0, time.perf_counter()
        for i, t in enumerate(texts):
            out = m.create_chat_completion([{"role": "user", "content": t}], max_tokens=max_new, temperature=0.8,
                                           top_p=0.95, seed=i)
            toks += out["usage"]["completion_tokens"]
        return toks / (time.perf_counter() - t0)
    finally:
        m.close()


def bare_tps(backend, texts: list[str], batch: int, max_new: int) -> float:
    import torch

    tok, model = backend._tokenizer, backend._model
    chat = [backend._prompt_text([{"role": "user", "content": t}]) for t in texts]
    toks, t0 = 0, time.perf_counter()
    for s in range(0, len(chat), batch):
        enc = tok(chat[s:s + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=0.8, top_p=0.95, max_new_tokens=max_new,
                                 pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        for row in new.tolist():
            toks += next((j + 1 for j, t in enumerate(row) if t == tok.eos_token_id), len(row))
    return toks / (time.perf_counter() - t0)


def ours_tps(llm, texts: list[str], batch: int, max_new: int) -> float:
    from datasets import Dataset

    from synth_datasets import TextGenerator

    llm.options["batch_size"] = batch
    llm.backend.batch_size = batch
    llm.stats.clear()
    gen = TextGenerator(llm, "{{ p }}", temperature=0.8, top_p=0.95, max_new_tokens=max_new)
    t0 = time.perf_counter()
    Dataset.from_dict({"p": texts}).map(gen, batched=True, batch_size=len(texts))
    return llm.stats["completion_tokens"] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--llama-prompts", type=int, default=32, help="prompts sent to llama.cpp (one stream)")
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()

    from synth_datasets import LLM
    from synth_datasets.llm import embedded_model_path

    texts = prompts(args.prompts)
    res: dict = {"settings": vars(args), "llama_cpp_single_stream": [], "llama_cpp_inproc": [], "bare": {},
                 "ours": {}, "ours_bf16": {}}
    proc, url = _common.start_llama_server(str(embedded_model_path()))
    try:
        llama_server_tps(url, texts[:2], 8)  # warm-up
        for _ in range(args.runs):
            res["llama_cpp_single_stream"].append(llama_server_tps(url, texts[:args.llama_prompts], args.max_new_tokens))
    finally:
        proc.stop()
    for _ in range(args.runs):
        res["llama_cpp_inproc"].append(llama_inproc_tps(str(embedded_model_path()), texts[:args.llama_prompts],
                                                        args.max_new_tokens))
    llm = LLM(cache=False)
    llm.backend._load()
    llm16 = LLM(cache=False, dtype="bfloat16")
    llm16.backend._load()
    bare_tps(llm.backend, texts[:8], 8, 8)  # warm-up
    for b in args.batches:
        res["bare"][b], res["ours"][b] = [], []
        for _ in range(args.runs):
            res["bare"][b].append(bare_tps(llm.backend, texts, b, args.max_new_tokens))
            res["ours"][b].append(ours_tps(llm, texts, b, args.max_new_tokens))
            res["ours_bf16"].setdefault(b, []).append(ours_tps(llm16, texts, b, args.max_new_tokens))
    llama = _common.median(res["llama_cpp_single_stream"])
    inproc = _common.median(res["llama_cpp_inproc"])
    res["median_new_tokens_per_s"] = {"llama_cpp_single_stream": llama, "llama_cpp_inproc": inproc,
                                      **{f"ours_bf16_b{b}": _common.median(res["ours_bf16"][b]) for b in args.batches},
                                      **{f"bare_b{b}": _common.median(res["bare"][b]) for b in args.batches},
                                      **{f"ours_b{b}": _common.median(res["ours"][b]) for b in args.batches}}
    res["ratio_ours_vs_llama_cpp"] = {b: _common.median(res["ours"][b]) / llama for b in args.batches}
    res["ratio_ours_vs_llama_cpp_inproc"] = {b: _common.median(res["ours"][b]) / inproc for b in args.batches}
    res["ratio_ours_bf16_vs_llama_cpp_inproc"] = {b: _common.median(res["ours_bf16"][b]) / inproc for b in args.batches}
    res["ratio_ours_vs_bare"] = {b: _common.median(res["ours"][b]) / _common.median(res["bare"][b]) for b in args.batches}
    _common.write_result("local_generation", res)


if __name__ == "__main__":
    main()
