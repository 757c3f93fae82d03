"""Magpie (Xu et al. 2024): instructions sampled from the chat template alone, on the real embedded model.

Small on purpose (8 rows, 48 new tokens): one turns=1 run (+ its cached rerun) and one turns=2 run of 4
rows. Endpoints are refused before any request (checked against the fault server's request log).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

from synth_datasets import LLM, Magpie
from synth_datasets.curate import InstructionDebris
from synth_datasets.errors import InvalidParameterError
from synth_datasets.llm import ChatRequest, SamplingParams
from synth_datasets.llm.cache import request_key



def hash_in_subprocess(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]

SMOL_PREFIX = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
               "<|im_start|>user\n")


@pytest.fixture(scope="module")
def smol(tmp_path_factory, embedded_llm):
    llm = LLM("smollm2-135m", batch_size=16, cache=str(tmp_path_factory.mktemp("magpie") / "r.sqlite"))
    # the same GGUF, already loaded once for the session (the cache keys come from its identity, which is the same)
    llm._backend, llm._backend_pid = embedded_llm.backend, os.getpid()
    return llm


def make(llm, **kw):
    return Magpie(llm, max_new_tokens=48, seed=kw.pop("seed", 0), **kw)


def test_magpie_writes_instructions_answers_them_and_reruns_from_the_cache(smol):
    rows = Dataset.from_dict({"id": list(range(8))})
    ds = rows.map(make(smol), batched=True)
    assert ds.column_names[:4] == ["id", "instruction", "response", "messages"]
    assert smol.stats["requests"] == 16 and smol.stats["cache_hits"] == 0  # 8 instructions + 8 replies
    assert all(isinstance(t, str) and t.strip() == t and t for t in ds["instruction"])
    assert len(set(ds["instruction"])) == 8  # one seed per row: no two rows sample the same text
    assert all(not t.startswith("<|") and "<|im_start|>" not in t for t in ds["instruction"])
    for row in ds:
        assert row["messages_error"] is None and row["messages_turns"] == 1
        assert row["messages"] == [{"role": "user", "content": row["instruction"]},
                                   {"role": "assistant", "content": row["response"]}]
        assert row["response"] and row["response"] != row["instruction"]
        assert row["instruction_finish_reason"] in ("stop", "length") and row["messages_tokens"] > 0
    # the same configuration again (in-memory data is never cached by datasets: the callable runs) -> all cached
    again = rows.map(make(smol), batched=True)
    assert smol.stats["requests"] == 16 and smol.stats["cache_hits"] == 16
    assert again["messages"] == ds["messages"]
    # instructions alone (respond=False): the same instructions, from the cache
    alone = rows.map(make(smol, respond=False), batched=True)
    assert alone["instruction"] == ds["instruction"] and alone["response"] == [None] * 8
    assert alone["messages"][0] == [{"role": "user", "content": ds["instruction"][0]}]
    assert smol.stats["requests"] == 16 and smol.stats["cache_hits"] == 24
    # another seed -> other instructions (requests, not cache hits)
    other = Dataset.from_dict({"id": [0, 1]}).map(make(smol, seed=1), batched=True)
    assert smol.stats["requests"] == 20 and set(other["instruction"]).isdisjoint(ds["instruction"][:2])
    # describe() records the exact template prefix the instructions were sampled from
    d = make(smol).describe()
    assert d["type"] == "Magpie" and d["template_prefix"] == SMOL_PREFIX and d["llm"]["name"] == "smollm2-135m"
    assert d["params"]["temperature"] == 1.0 and d["turns"] == 1 and d["system"] is None


def test_two_turns_continue_the_conversation_from_the_template(smol):
    ds = Dataset.from_dict({"id": list(range(4))}).map(make(smol, turns=2), batched=True)
    for row in ds:
        assert row["messages_error"] is None, row["messages_error"]
        assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user", "assistant"]
        assert all(m["content"] and m["content"].strip() == m["content"] for m in row["messages"])
        assert row["messages"][0]["content"] == row["instruction"] and row["messages_turns"] == 2
    # the first round of a 2-turn conversation is the 1-turn conversation (same seeds, same cache entries)
    one = Dataset.from_dict({"id": list(range(4))}).map(make(smol), batched=True)
    assert [m[:2] for m in ds["messages"]] == one["messages"]
    # the second user turn is sampled from the conversation so far + an open user turn
    first = ds[0]["messages"][:2]
    assert smol.prompt_text(first, next_role="user") == (
        SMOL_PREFIX + first[0]["content"] + "<|im_end|>\n<|im_start|>assistant\n" + first[1]["content"]
        + "<|im_end|>\n<|im_start|>user\n")
    # a system prompt replaces the template's default one in the prefix
    assert make(smol, system="You are a chemist.").template_prefix() == (
        "<|im_start|>system\nYou are a chemist.<|im_end|>\n<|im_start|>user\n")


def test_fingerprint_is_config_only_and_stable_across_processes(tmp_path):
    cache = str(tmp_path / "c.sqlite")  # never opened: only hashed
    h = Hasher.hash(make(LLM("smollm2-135m", cache=cache), turns=2))
    assert h == Hasher.hash(make(LLM("smollm2-135m", cache=cache), turns=2))
    assert h != Hasher.hash(make(LLM("smollm2-135m", cache=cache), turns=1))
    assert h != Hasher.hash(make(LLM("smollm2-135m", cache=cache), turns=2, seed=1))
    assert h != Hasher.hash(make(LLM("smollm2-135m", cache=cache), turns=2, system="Be brief."))
    assert hash_in_subprocess(
        "from datasets.fingerprint import Hasher\nfrom synth_datasets import LLM, Magpie\n"
        f"print(Hasher.hash(Magpie(LLM('smollm2-135m', cache={cache!r}), max_new_tokens=48, seed=0, turns=2)))") == h


def test_endpoints_are_refused_before_any_request(fault_server):
    fault_server.log.clear()
    for llm in (LLM(fault_server.url, model="m", cache=False), LLM(fault_server.url, model="m", cache=False, mode="batch")):
        with pytest.raises(InvalidParameterError, match=r"only exposes chat completions.*LLM\('smollm2-135m'\)"):
            Magpie(llm)
    assert fault_server.log == []  # not even /models was asked
    # LLM.generate refuses a user-turn request too, before any chat completion is sent
    llm = LLM(fault_server.url, model="m", cache=False)
    with pytest.raises(InvalidParameterError, match="Use a local model"):
        llm.generate([ChatRequest.of([], 0, next_role="user")], SamplingParams(max_new_tokens=8))
    assert [e["path"] for e in fault_server.log if e["path"].endswith("/chat/completions")] == []
    with pytest.raises(InvalidParameterError, match="Use a local model"):
        llm.prompt_text([], next_role="user")


def test_an_ordinary_request_keeps_its_cache_key_and_a_user_turn_gets_its_own():
    ident = {"backend": "transformers", "name": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": "ab", "dtype": "float32"}
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "héllo"}]
    p = SamplingParams(max_new_tokens=8)
    # computed with the cache.py and base.py of d1b5e49 (before ChatRequest.next_role existed)
    assert request_key(ident, ChatRequest.of(msgs, 5), p) == \
        "74d29e1b0728e1653760926ad6814cf3c285f2410446c5ea7f16065cf485081a"
    assert request_key(ident, ChatRequest.of(msgs, 5, next_role="user"), p) == \
        "18d94961cdaae23f30775e9b9dbff718b143d16e5183974f33fe7a9d4c1a094c"
    with pytest.raises(InvalidParameterError, match="next_role='system'"):
        ChatRequest.of(msgs, 5, next_role="system")


def test_instruction_debris_names_why_a_sampled_instruction_is_dropped():
    texts = ["Can you explain how vaccines work?", "", "  \n ", "Hello<|im_end|>", "Fix this [INST] code",
             "assistant\nSure, here is a poem.", "User: what is 2+2?", "Sure! Here is the answer.",
             "Hello! How can I assist you today?", "Write a haiku about the sea."]
    ds = Dataset.from_dict({"instruction": texts, "id": list(range(len(texts)))})
    f = InstructionDebris(column="instruction")
    marked = ds.map(f.mark, batched=True)
    assert marked["debris_reason"] == [None, "empty", "empty", "template_token", "template_token", "role_marker",
                                       "role_marker", "assistant_voice", "assistant_voice", None]
    kept = ds.filter(InstructionDebris(column="instruction"), batched=True)
    assert kept["id"] == [0, 9]
    assert Hasher.hash(InstructionDebris(column="instruction")) == Hasher.hash(f)
    with pytest.raises(InvalidParameterError, match="does not compile"):
        InstructionDebris(role_markers=["(unclosed"])
    with pytest.raises(InvalidParameterError, match="turns=0"):
        Magpie(LLM(cache=False), turns=0)


def test_magpie_builder_records_the_template_prefix_and_filters(smol):
    from builders import load

    system = "You are a helpful assistant. Reply in one or two short sentences."
    r = load("magpie").recipe(llm=smol, n=6, system=system, max_new_tokens=64, instruction_max_new_tokens=48)
    ds, record = r.run()
    names = [s.name for s in record.steps]
    assert names == ["magpie", "instruction-truncated", "debris", "length", "repetition", "script",
                     "response-truncated", "dedup", "near-dedup"]
    assert record.steps[0].describe["template_prefix"] == f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
    assert record.steps[0].rows_out == 6 and 0 < ds.num_rows <= 6
    assert all(m[0] == {"role": "system", "content": system} and m[1] == {"role": "user", "content": i}
               for m, i in zip(ds["messages"], ds["instruction"]))
    with pytest.raises(InvalidParameterError, match="only exposes chat completions"):
        load("magpie").recipe(n=2, model="http://127.0.0.1:9/v1")


def test_a_leading_speaker_label_is_not_part_of_the_instruction():
    """The 1.5B model often writes "Q: ..." or a lone "Qwen:" line before its instruction (bench_magpie.py)."""
    from synth_datasets.generate.magpie import _LABEL

    cases = {"Q: What is the closest planet to the Sun?": "What is the closest planet to the Sun?",
             "Qwen:\nI have a list of dicts. How do I sort it?": "I have a list of dicts. How do I sort it?",
             "User: hi there": "hi there", "Question : why?": "why?",
             "How do I: sort a list?": "How do I: sort a list?", "Note: this stays as written": "Note: this stays as written"}
    assert {t: _LABEL.sub("", t, count=1).strip() for t in cases} == cases
