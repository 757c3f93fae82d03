"""Sample-wise multi-step generation on the embedded model: declared chains (the qa-pairs builder gives
the rows of its hand-made form), gates, latent and skipped sub-steps, and two-role dialogues.

Tiny n and few new tokens: the machine's two cores are shared."""

import pickle

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

import builders
from builders import qa_pairs, support_dialogues
from synth_datasets import LLM, Completion, Conditions, Template, TextGenerator
from synth_datasets.cli import run_build
from synth_datasets.curate import ExactDuplicates, Length
from synth_datasets.errors import InvalidParameterError, MissingVariableError
from synth_datasets.generate import Chain, Dialogue, Gate, Role
from synth_datasets.recipe import Recipe


def handmade_qa(llm, *, n, seed=0, max_new_tokens=16, min_question_words=4):
    """The qa-pairs builder as it was before it became a declared chain: the chain written out by hand."""
    r = Recipe("qa-by-hand", source=Dataset.from_dict({"id": list(range(n))}), seed=seed)
    r.map(Conditions(topic=qa_pairs.TOPICS, difficulty=qa_pairs.DIFFICULTIES, seed=seed), name="conditions")
    r.map(TextGenerator(llm, qa_pairs.QUESTION, output="question", seed=seed, temperature=0.9, top_p=0.95,
                        max_new_tokens=max_new_tokens), name="ask")
    r.filter(Length(column="question", min_words=min_question_words), name="question-length")
    r.fit_filter(ExactDuplicates(column="question"), name="dedup", with_indices=True)
    r.map(TextGenerator(llm, qa_pairs.ANSWER, output="answer", seed=seed, temperature=0.2,
                        max_new_tokens=max_new_tokens), name="answer")
    return r


def test_declared_qa_chain_gives_the_handmade_rows(embedded_llm):
    hand, hrec = handmade_qa(embedded_llm, n=4).run()
    ds, rec = qa_pairs.recipe(n=4, max_new_tokens=16, llm=embedded_llm).run()
    assert ds.num_rows >= 1 and ds.to_list() == hand.to_list()
    # The same rows because the chain sent the same requests (messages + seeds): the hand-made run paid
    # for them, so the chain's only misses are answers to questions the hand-made run deduplicated away.
    stats, usage = rec.steps[1].stats, rec.steps[1].usage
    dups = hrec.steps[3].rows_in - hrec.steps[3].rows_out
    assert usage["requests"] == dups
    assert usage["requests"] + usage["cache_hits"] == 4 + stats["answer.rows_in"]
    assert stats["question-length.rows_out"] == hrec.steps[2].rows_out == stats["answer.rows_in"]
    # one map step, every sub-prompt recorded
    d = rec.steps[1].describe
    assert [(s["name"], s["kind"]) for s in d["steps"]] == [("question", "generate"), ("question-length", "gate"),
                                                            ("answer", "generate")]
    assert d["steps"][0]["template"]["user"] == qa_pairs.QUESTION.user
    assert d["steps"][2]["template"]["user"] == qa_pairs.ANSWER.user
    assert d["steps"][1]["filter"]["params"]["min_words"] == 4


def hint(batch):
    """A plain map-callable sub-step that has nothing for odd ids (as a failed generation would)."""
    return {"hint": [None if i % 2 else f"the number {i}" for i in batch["id"]]}


def _chain(llm, *, gate: bool):
    steps = [hint, TextGenerator(llm, "Write one short sentence about {{ hint }}.", output="sentence",
                                 max_new_tokens=12, seed=3)]
    if gate:
        steps.append(Gate(Length(column="sentence", min_words=2), name="has-sentence"))
    steps.append(TextGenerator(llm, "Give a three-word title to: {{ sentence }}", output="title",
                               max_new_tokens=8, seed=3))
    return Chain(steps, latent=["hint"])


def test_chain_gate_latent_skipped_rows_and_batching(embedded_llm):
    ds = Dataset.from_dict({"id": [0, 1, 2, 3]})
    n0 = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"]
    chain = _chain(embedded_llm, gate=False)
    out = ds.map(chain, batched=True, batch_size=4)
    assert out.num_rows == 4 and "hint" not in out.column_names  # latent: used, then dropped
    assert out.column_names[:3] == ["id", "sentence", "sentence_sample"]
    for r in out:
        if r["id"] % 2:  # no hint: neither sub-step is sent; both say why
            assert r["sentence"] is None and "'hint'" in r["sentence_error"] and "skipped" in r["sentence_error"]
            assert r["title"] is None and "'sentence'" in r["title_error"]
        else:
            assert r["sentence"] and r["title"] and r["sentence_error"] is None and r["title_error"] is None
    assert embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"] - n0 == 4  # 2 rows x 2 sub-steps
    assert chain.stats["sentence.skipped"] == 2 and chain.stats["title.skipped"] == 2

    # A gate drops the rows before the next sub-step. Row by row (batch_size=1) or with positions, the
    # requests are the same ones: no new model call, the same texts.
    before = embedded_llm.stats["requests"]
    for kwargs in ({"batch_size": 1}, {"batch_size": 3}):
        gated = ds.map(_chain(embedded_llm, gate=True), batched=True, **kwargs)
        assert gated["id"] == [0, 2] and gated["title"] == [out[0]["title"], out[2]["title"]]
    assert embedded_llm.stats["requests"] == before
    # with_indices: positions follow the rows through the gate, so row 2 keeps its key (i2) and gets the
    # requests (hence the titles) it gets without the gate
    plain = ds.map(_chain(embedded_llm, gate=False), batched=True, with_indices=True)
    before = embedded_llm.stats["requests"]
    keyed = ds.map(_chain(embedded_llm, gate=True), batched=True, batch_size=3, with_indices=True)
    assert keyed["id"] == [0, 2] and keyed["title"] == [plain[0]["title"], plain[2]["title"]]
    assert embedded_llm.stats["requests"] == before


def test_chain_checks_every_sub_step_before_any_call(tmp_path):
    llm = LLM(cache=tmp_path / "c.sqlite")
    chain = Chain([TextGenerator(llm, "Say {{ a }}.", output="x"), TextGenerator(llm, "Use {{ nope }}.", output="y")])
    with pytest.raises(MissingVariableError, match="'y'.*'nope'.*Available: \\['a', 'x'"):
        chain({"a": ["hi"]})
    assert llm._backend is None  # no model was even loaded
    with pytest.raises(InvalidParameterError, match="named 'x'"):
        Chain([TextGenerator(llm, "a", output="x"), TextGenerator(llm, "b", output="x")])
    with pytest.raises(InvalidParameterError, match="not sub-step names"):
        Chain([TextGenerator(llm, "a", output="x")], latent=["reasoning"])
    with pytest.raises(InvalidParameterError, match="at least one generator"):
        Chain([Gate(Length(column="x", min_words=1))])


def test_chain_and_dialogue_pickle_to_configuration(tmp_path):
    def make(user="Ask about {{ topic }}."):
        llm = LLM(cache=tmp_path / "c.sqlite")
        chain = Chain([TextGenerator(llm, user, output="q"), Gate(Length(column="q", min_words=2)),
                       TextGenerator(llm, "Answer: {{ q }}", output="a")], latent=["q"])
        dialogue = Dialogue(llm, user=user, assistant="Help.", turns=(1, 3), stop=["bye"])
        return chain, dialogue

    (c1, d1), (c2, d2), (c3, d3) = make(), make(), make("Ask about {{ topic }}!")
    assert Hasher.hash(c1) == Hasher.hash(c2) and Hasher.hash(d1) == Hasher.hash(d2)
    assert Hasher.hash(c1) != Hasher.hash(c3) and Hasher.hash(d1) != Hasher.hash(d3)
    state = pickle.loads(pickle.dumps(c1)).__getstate__()
    assert state["format"] == 1 and state["latent"] == ["q"]
    assert Hasher.hash(pickle.loads(pickle.dumps(d1))) == Hasher.hash(d1)


def test_support_dialogues_builder(embedded_llm, tmp_path):
    ds, res = run_build(builders.load("support-dialogues"), {"n": 2, "max_turns": 2, "max_new_tokens": 16},
                        out=str(tmp_path / "sd"), llm=embedded_llm)
    steps = res.provenance["steps"]
    assert [s["name"] for s in steps] == ["conditions", "dialogue", "complete"] and ds.num_rows >= 1
    assert steps[2]["rows_in"] == ds.num_rows  # every dialogue had a complete round
    calls = steps[1]["usage"]["requests"] + steps[1]["usage"]["cache_hits"]
    assert calls == sum(2 * t for t in ds["messages_turns"])  # one call per message, batched per turn
    tok = embedded_llm.backend._tokenizer
    for r in ds:
        m = r["messages"]
        assert 1 <= r["messages_turns"] <= 2 and len(m) == 2 * r["messages_turns"]
        assert [x["role"] for x in m] == ["user", "assistant"] * r["messages_turns"]
        assert all(x["content"].strip() for x in m)
        assert r["messages_stop"] in ("turns", "stop")
        if r["messages_stop"] == "turns":
            assert not any(w in m[0]["content"].lower() for w in support_dialogues.STOP)
        assert r["topic"] in support_dialogues.TOPICS and r["persona"] in support_dialogues.PERSONAS
        text = tok.apply_chat_template(m, tokenize=False)  # the chat format transformers takes
        assert all(x["content"] in text for x in m)
    d = steps[1]["describe"]
    assert d["user"]["template"]["user"] == support_dialogues.CUSTOMER.user and d["turns"] == [1, 2]
    assert d["assistant"]["template"]["system"] == support_dialogues.AGENT.system and d["stop"] == ["goodbye", "bye"]
    card = (tmp_path / "sd" / "README.md").read_text()
    assert support_dialogues.AGENT.system in card and "You play a customer of an online shop" in card


def test_dialogue_stop_rule_ends_after_the_reply(embedded_llm):
    # every customer message contains a space: each dialogue ends after its first reply, whatever turns says
    d = Dialogue(embedded_llm, user="Write a one-line question about {{ topic }}.",
                 assistant=Template(system="You answer questions about {{ topic }}.", user="Greet the user."),
                 turns=(2, 3), stop=[" "], max_new_tokens=10, seed=5, system=True)
    out = Dataset.from_dict({"topic": ["tea", "trains"]}).map(d, batched=True)
    assert out["messages_stop"] == ["stop", "stop"] and out["messages_turns"] == [1, 1]
    assert [[m["role"] for m in ms] for ms in out["messages"]] == [["system", "user", "assistant"]] * 2
    assert out["messages"][0][0]["content"] == "You answer questions about tea."


def test_dialogue_turns_are_seeded_per_row(tmp_path):
    llm = LLM(cache=tmp_path / "c.sqlite")
    d, again, other = (Dialogue(llm, user="Hi", assistant="Hello", turns=(1, 3), seed=s) for s in (0, 0, 1))
    keys = [f"i{i}" for i in range(300)]
    drawn = [d._rounds(k) for k in keys]
    assert set(drawn) == {1, 2, 3} and drawn == [again._rounds(k) for k in keys]
    assert drawn != [other._rounds(k) for k in keys]


def test_dialogue_roles_and_failures():
    # chat mode: a role sees its own messages as "assistant" and the other side's as "user"
    role = Role(Template(system="You are a student.", user="Ask a question."), history="chat")
    history = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}]
    assert role.messages({}, "user", history) == [{"role": "system", "content": "You are a student."},
                                                  {"role": "assistant", "content": "What is 2+2?"},
                                                  {"role": "user", "content": "4."}]
    assert role.messages({}, "user", [])[-1] == {"role": "user", "content": "Ask a question."}
    with pytest.raises(InvalidParameterError, match="seed"):
        Role("x", params={"seed": 3})
    with pytest.raises(InvalidParameterError, match="turns"):
        Dialogue(LLM(cache=False), user="a", assistant="b", turns=(3, 1))
    # a failed reply ends the dialogue on the last complete round, with the error kept
    d = Dialogue(LLM(cache=False), user="a", assistant="b", turns=3)
    st = {"stop": None, "error": None, "tokens": 0, "rounds": 1, "end_after_reply": False}
    h = list(history) + [{"role": "user", "content": "And 3+3?"}]
    d._take(st, h, "assistant", Completion(None, "error", error="HTTP 500"), 2, 3, {})
    assert h == history and st["stop"] == "error" and st["error"] == "HTTP 500" and st["rounds"] == 1
