"""What int8 costs in quality: how well each dtype of a named model reads real text it did not write.

    python benchmarks/bench_int8_quality.py --model qwen2.5-coder-1.5b --dtypes bfloat16 int8 [float32]

Real texts (tests/realdata.py, fetched with pip): --rows Rotten Tomatoes snippets as the reply to "Write a
short movie review." and --rows/3 BBC News articles (first 600 characters) as the reply to "Write a news
article.", each in the model's chat template. For every dtype, one process after another (the model
loaded once per dtype, teacher forcing, no sampling):
  - ``nll``: mean negative log-likelihood per reply token (lower: the model finds real text likelier);
  - against the first dtype given: ``kl`` (mean KL divergence of the next-token distributions, nats per
    token) and ``top1_agree`` (share of positions where both put the same token first).

Writes benchmarks/results/int8_quality-<model>.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

import _common


def _pairs(rows: int) -> list[tuple[str, str]]:
    import realdata

    rt = realdata.rotten_tomatoes(rows, seed=5)
    bbc = realdata.bbc_news(max(1, rows // 3), seed=5)
    return ([("Write a short movie review.", r["text"]) for r in rt]
            + [("Write a news article.", r["text"][:600]) for r in bbc])


def log_probs(model: str, dtype: str, pairs, threads: int):
    """Per pair, the (reply tokens x vocabulary) log-probabilities and the reply's token ids."""
    import torch

    from synth_datasets import LLM

    llm = LLM(model, cache=False, dtype=dtype, threads=threads)
    backend = llm.backend
    backend._load()
    tok, net = backend.tokenizer, backend._model
    out = []
    with torch.inference_mode():
        for ask, reply in pairs:
            prompt = tok.apply_chat_template([{"role": "user", "content": ask}], tokenize=False,
                                             add_generation_prompt=True)
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            r_ids = tok(reply + (tok.eos_token or ""), add_special_tokens=False)["input_ids"]
            logits = net(input_ids=torch.tensor([p_ids + r_ids])).logits[0, len(p_ids) - 1:-1].float()
            out.append((torch.log_softmax(logits, -1), torch.tensor(r_ids)))
    del llm, backend, net
    gc.collect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "int8"])
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    pairs = _pairs(args.rows)
    result = {"settings": vars(args), "texts": len(pairs), "dtypes": {}}
    ref = None
    for dtype in args.dtypes:
        t = time.perf_counter()
        lps = log_probs(args.model, dtype, pairs, args.threads)
        n = sum(len(ids) for _, ids in lps)
        row = {"nll": -sum(float(lp.gather(-1, ids[:, None]).sum()) for lp, ids in lps) / n, "tokens": n,
               "seconds": time.perf_counter() - t}
        if ref is None:
            ref = lps
        else:
            row["kl"] = sum(float((r.exp() * (r - lp)).sum()) for (r, _), (lp, _) in zip(ref, lps)) / n
            row["top1_agree"] = sum(int((r.argmax(-1) == lp.argmax(-1)).sum()) for (r, _), (lp, _) in
                                    zip(ref, lps)) / n
            row["nll_vs_first"] = row["nll"] / result["dtypes"][args.dtypes[0]]["nll"] - 1
        result["dtypes"][dtype] = row
        print(dtype, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    result["load_1min_at_end"] = os.getloadavg()[0]
    _common.write_result(f"int8_quality-{_common.model_slug(args.model)}", result)


if __name__ == "__main__":
    main()
