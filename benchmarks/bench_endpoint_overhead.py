"""Endpoint client overhead: TextGenerator inside Dataset.map vs a bare aiohttp loop.

A loopback server (its own process) answers every request after a fixed latency L. At concurrency C
the best possible rate is C/L requests/s. We run the same N requests through:
  (a) a bare aiohttp session + semaphore (the baseline),
  (b) TextGenerator in Dataset.map, aiohttp transport (our default),
  (c) TextGenerator in Dataset.map, huggingface_hub AsyncInferenceClient transport,
  (d) the async form, ``Dataset.map(gen.acall, batched=True)``, aiohttp transport (batches overlap),
alternating, several runs each, and report medians and ratios.

    python benchmarks/bench_endpoint_overhead.py --n 3200 --concurrency 64 --latency 0.2 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import _common


async def bare_aiohttp(url: str, n: int, concurrency: int) -> float:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def one(i):
            async with sem:
                body = {"messages": [{"role": "user", "content": f"row {i}"}], "max_tokens": 16, "seed": i}
                async with s.post(url + "/chat/completions", data=json.dumps(body),
                                  headers={"Content-Type": "application/json"}) as r:
                    data = json.loads(await r.read())
                    assert data["choices"][0]["message"]["content"]

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0


def ours(url: str, n: int, concurrency: int, transport: str, batch_size: int, use_async: bool = False) -> float:
    from datasets import Dataset

    from synth_datasets import LLM, TextGenerator

    llm = LLM(url, cache=False, concurrency=concurrency, transport=transport)
    gen = TextGenerator(llm, "row {{ i }}", max_new_tokens=16)
    ds = Dataset.from_dict({"i": list(range(n))})
    llm.generate([], None)
    t0 = time.perf_counter()
    out = ds.map(gen.acall if use_async else gen, batched=True, batch_size=batch_size)
    dt = time.perf_counter() - t0
    assert out.num_rows == n and all(e is None for e in out["text_error"])
    llm.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3200)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000, help="Dataset.map batch_size (datasets' default)")
    args = ap.parse_args()
    proc, url = _common.start_fault_server(args.latency)
    limit = args.concurrency / args.latency
    times = {"bare_aiohttp": [], "ours_aiohttp": [], "ours_async_aiohttp": [], "ours_huggingface_hub": []}
    try:
        asyncio.run(bare_aiohttp(url, 200, args.concurrency))  # warm-up
        for _ in range(args.runs):
            times["bare_aiohttp"].append(asyncio.run(bare_aiohttp(url, args.n, args.concurrency)))
            times["ours_aiohttp"].append(ours(url, args.n, args.concurrency, "aiohttp", args.batch_size))
            times["ours_async_aiohttp"].append(ours(url, args.n, args.concurrency, "aiohttp", args.batch_size, True))
            times["ours_huggingface_hub"].append(ours(url, args.n, args.concurrency, "huggingface_hub", args.batch_size))
    finally:
        proc.terminate()
    med = {k: _common.median(v) for k, v in times.items()}
    rate = {k: args.n / v for k, v in med.items()}
    _common.write_result("endpoint_overhead", {
        "settings": vars(args), "limit_req_per_s": limit, "seconds": times,
        "median_req_per_s": rate, "fraction_of_limit": {k: r / limit for k, r in rate.items()},
        "ratio_ours_aiohttp_vs_bare": rate["ours_aiohttp"] / rate["bare_aiohttp"],
        "ratio_ours_async_aiohttp_vs_bare": rate["ours_async_aiohttp"] / rate["bare_aiohttp"],
        "ratio_ours_hub_vs_bare": rate["ours_huggingface_hub"] / rate["bare_aiohttp"],
    })


if __name__ == "__main__":
    main()
