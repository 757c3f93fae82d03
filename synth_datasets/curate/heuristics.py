"""Heuristic filters (survey §3.2.1): length, format, repetition, script, banned strings, refusals,
truncated or failed generations. Stateless: each row is decided on its own, so they work batch by
batch and under ``num_proc``.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"text": ["ok then", "As an AI language model, I cannot do that.", "a b c d e"]})
>>> list(ds.filter(Refusals(column="text"), batched=True)["text"])
['ok then', 'a b c d e']
>>> list(ds.map(Length(column="text", min_words=3).mark, batched=True)["length_reason"])
['too_few_words', None, None]
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Any, Sequence

from ..columns import TextColumn, check_column_option
from ..errors import InvalidParameterError
from .base import Filter, check_columns, check_range

_WORD = re.compile(r"\S+")


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


class _TextFilter(TextColumn, Filter):
    """A filter over one text column (``column``; None = the dataset's declared text column, else
    ``text``: :func:`synth_datasets.columns.resolve_text_column`); a None (failed) text is dropped with
    reason ``missing_text``."""

    def __init__(self, column: str | None, name: str | None):
        check_column_option(column)
        self.column = column
        super().__init__(name=name)

    def decide(self, batch, indices=None):
        col = self._text_column(batch)
        return [self.decide_text(t) if isinstance(t, str) else "missing_text" for t in batch[col]]

    def decide_text(self, text: str) -> str | None:
        raise NotImplementedError


class Length(_TextFilter):
    """Length bounds in characters, words (whitespace-separated) and tokens.

    Tokens come from ``tokens_column`` (e.g. ``text_tokens`` written by ``TextGenerator``) or from a
    ``tokenizer`` (a local folder or Hub id already in the cache, loaded lazily). Reasons:
    ``too_short`` / ``too_long`` (chars), ``too_few_words`` / ``too_many_words``,
    ``too_few_tokens`` / ``too_many_tokens``.
    """

    _PARAMS = ("column", "min_chars", "max_chars", "min_words", "max_words", "min_tokens", "max_tokens",
               "tokens_column", "tokenizer")
    name = "length"

    def __init__(self, *, column: str | None = None, min_chars: int | None = None, max_chars: int | None = None,
                 min_words: int | None = None, max_words: int | None = None, min_tokens: int | None = None,
                 max_tokens: int | None = None, tokens_column: str | None = None, tokenizer: str | None = None,
                 name: str | None = None):
        bounds = dict(min_chars=min_chars, max_chars=max_chars, min_words=min_words, max_words=max_words,
                      min_tokens=min_tokens, max_tokens=max_tokens)
        for k, v in bounds.items():
            check_range(k, v, 0, integer=True, allow_none=True)
        for unit in ("chars", "words", "tokens"):
            lo, hi = bounds[f"min_{unit}"], bounds[f"max_{unit}"]
            if lo is not None and hi is not None and lo > hi:
                raise InvalidParameterError(f"min_{unit}={lo} > max_{unit}={hi}: no row could pass; fix the bounds.")
        if all(v is None for v in bounds.values()):
            raise InvalidParameterError("Length needs at least one bound (min_/max_ chars, words or tokens).")
        if (min_tokens is not None or max_tokens is not None) and not (tokens_column or tokenizer):
            raise InvalidParameterError("token bounds need tokens_column= (e.g. 'text_tokens') or tokenizer=.")
        self.__dict__.update(bounds)
        self.tokens_column, self.tokenizer = tokens_column, tokenizer
        super().__init__(column, name)

    @cached_property
    def _rt_tok(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.tokenizer, local_files_only=True)

    def decide(self, batch, indices=None):
        col = self._text_column(batch)
        check_columns(list(batch.keys()), [self.tokens_column], "Length")
        texts = batch[col]
        if self.min_tokens is None and self.max_tokens is None:
            ntok = [None] * len(texts)
        elif self.tokens_column is not None:
            ntok = batch[self.tokens_column]
        else:
            ok = [t if isinstance(t, str) else "" for t in texts]
            ntok = [len(ids) for ids in self._rt_tok(ok, add_special_tokens=False)["input_ids"]]
        return [self._one(t, k) if isinstance(t, str) else "missing_text" for t, k in zip(texts, ntok)]

    def _one(self, text: str, ntok: int | None) -> str | None:
        for unit, value in (("chars", len(text)), ("words", None), ("tokens", ntok)):
            lo, hi = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
            if lo is None and hi is None:
                continue
            if value is None:
                value = len(_WORD.findall(text))
            short, long = {"chars": ("too_short", "too_long")}.get(unit, (f"too_few_{unit}", f"too_many_{unit}"))
            if lo is not None and value < lo:
                return short
            if hi is not None and value > hi:
                return long
        return None


class Format(_TextFilter):
    """A required format: a regular expression (``search`` or ``fullmatch``) and/or JSON that validates
    against a JSON schema (``jsonschema`` package). Markdown code fences around JSON are tolerated.
    Reasons: ``no_match``, ``invalid_json``, ``schema_violation``.
    """

    _PARAMS = ("column", "regex", "match", "json_schema")
    name = "format"

    def __init__(self, *, column: str | None = None, regex: str | None = None, match: str = "search",
                 json_schema: dict | None = None, name: str | None = None):
        if regex is None and json_schema is None:
            raise InvalidParameterError("Format needs regex= and/or json_schema=.")
        if match not in ("search", "fullmatch"):
            raise InvalidParameterError(f"match={match!r} must be 'search' or 'fullmatch'.")
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as e:
                raise InvalidParameterError(f"regex={regex!r} does not compile: {e}. Fix the pattern.") from e
        if json_schema is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(json_schema)
            except SchemaError as e:
                raise InvalidParameterError(f"json_schema is not a valid JSON schema: {e.message}. Fix the schema.") from e
        self.regex, self.match, self.json_schema = regex, match, json_schema
        super().__init__(column, name)

    @cached_property
    def _rt_compiled(self):
        from jsonschema import Draft202012Validator

        rx = re.compile(self.regex, re.DOTALL) if self.regex is not None else None
        return rx, (Draft202012Validator(self.json_schema) if self.json_schema is not None else None)

    def decide_text(self, text):
        rx, validator = self._rt_compiled
        if rx is not None and not (rx.fullmatch(text) if self.match == "fullmatch" else rx.search(text)):
            return "no_match"
        if validator is not None:
            s = text.strip()
            fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", s, re.DOTALL)
            try:
                obj = json.loads(fence.group(1) if fence else s)
            except ValueError:
                return "invalid_json"
            if not validator.is_valid(obj):
                return "schema_violation"
        return None


class Repetition(_TextFilter):
    """Repeated n-grams (Gopher-style): ``1 - distinct/total`` word n-grams above ``max_ngram_ratio``
    -> ``repeated_ngrams``; share of duplicated lines above ``max_line_ratio`` -> ``repeated_lines``.
    Texts with fewer than ``n`` words are never dropped for n-grams."""

    _PARAMS = ("column", "n", "max_ngram_ratio", "max_line_ratio")
    name = "repetition"

    def __init__(self, *, column: str | None = None, n: int = 3, max_ngram_ratio: float = 0.3,
                 max_line_ratio: float | None = None, name: str | None = None):
        check_range("n", n, 1, integer=True)
        check_range("max_ngram_ratio", max_ngram_ratio, 0.0, 1.0)
        check_range("max_line_ratio", max_line_ratio, 0.0, 1.0, allow_none=True)
        self.n, self.max_ngram_ratio, self.max_line_ratio = n, max_ngram_ratio, max_line_ratio
        super().__init__(column, name)

    def decide_text(self, text):
        words = text.lower().split()
        grams = list(zip(*(words[i:] for i in range(self.n))))
        if grams and 1 - len(set(grams)) / len(grams) > self.max_ngram_ratio:
            return "repeated_ngrams"
        if self.max_line_ratio is not None:
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if lines and 1 - len(set(lines)) / len(lines) > self.max_line_ratio:
                return "repeated_lines"
        return None


class Script(_TextFilter):
    """Language/script check: the share of letters written in ``scripts`` (Unicode script names such as
    ``Latin``, ``Cyrillic``, ``Han``, ``Arabic``; ``regex`` package) must be at least ``min_fraction``
    -> else ``wrong_script``; a text with fewer than ``min_letters`` letters -> ``no_letters``."""

    _PARAMS = ("column", "scripts", "min_fraction", "min_letters")
    name = "script"

    def __init__(self, *, column: str | None = None, scripts: Sequence[str] = ("Latin",), min_fraction: float = 0.9,
                 min_letters: int = 1, name: str | None = None):
        import regex

        if isinstance(scripts, str):
            scripts = [scripts]
        for s in scripts:
            try:
                regex.compile(rf"\p{{Script={s}}}")
            except regex.error as e:
                raise InvalidParameterError(f"Unknown Unicode script {s!r}: use names like 'Latin', 'Cyrillic', "
                                            "'Han', 'Arabic', 'Devanagari'.") from e
        check_range("min_fraction", min_fraction, 0.0, 1.0)
        check_range("min_letters", min_letters, 0, integer=True)
        self.scripts, self.min_fraction, self.min_letters = list(scripts), min_fraction, min_letters
        super().__init__(column, name)

    @cached_property
    def _rt_rx(self):
        import regex

        return regex.compile(r"\p{L}"), regex.compile("|".join(rf"\p{{Script={s}}}" for s in self.scripts))

    def decide_text(self, text):
        letters, wanted = self._rt_rx
        n = len(letters.findall(text))
        if n < max(self.min_letters, 1):
            return "no_letters" if self.min_letters > 0 else None
        k = len([c for c in wanted.findall(text) if c.isalpha()])
        return None if k / n >= self.min_fraction else "wrong_script"


class BannedStrings(_TextFilter):
    """Drop texts containing any of ``strings`` (case-insensitive by default; ``whole_words`` matches
    at word boundaries) -> ``banned_string``."""

    _PARAMS = ("column", "strings", "case_sensitive", "whole_words")
    name = "banned"

    def __init__(self, *, strings: Sequence[str], column: str | None = None, case_sensitive: bool = False,
                 whole_words: bool = False, name: str | None = None):
        if isinstance(strings, str) or not strings or not all(isinstance(s, str) and s for s in strings):
            raise InvalidParameterError("strings must be a non-empty list of non-empty strings.")
        self.strings, self.case_sensitive, self.whole_words = list(strings), case_sensitive, whole_words
        super().__init__(column, name)

    @cached_property
    def _rt_rx(self):
        alt = "|".join(re.escape(s) for s in sorted(self.strings, key=len, reverse=True))
        return re.compile(rf"\b(?:{alt})\b" if self.whole_words else alt, 0 if self.case_sensitive else re.IGNORECASE)

    def decide_text(self, text):
        return "banned_string" if self._rt_rx.search(text) else None


REFUSAL_PATTERNS = (
    r"\bas an? (?:ai|artificial intelligence)\b",
    r"\bas an? (?:large )?language model\b",
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:'|no)?t|cannot|am unable|won't)",
    r"^\s*I (?:can(?:'|no)?t|cannot|won't|am unable to) (?:help|assist|provide|comply|fulfil|do|create|generate|write)",
    r"\bI(?:'m| am) (?:not able|unable) to (?:help|assist|provide|comply|fulfil|create|generate|write)",
    r"\bI (?:must|have to) (?:respectfully )?decline\b",
    r"\bagainst my (?:guidelines|programming|policy)\b",
)


class Refusals(_TextFilter):
    """Refusal and meta-answers ("As an AI ...", "I'm sorry, but I can't ...") -> ``refusal``.
    ``patterns`` (regular expressions, case-insensitive) replace the default list
    :data:`REFUSAL_PATTERNS`."""

    _PARAMS = ("column", "patterns")
    name = "refusal"

    def __init__(self, *, column: str | None = None, patterns: Sequence[str] = REFUSAL_PATTERNS, name: str | None = None):
        try:
            re.compile("|".join(f"(?:{p})" for p in patterns))
        except re.error as e:
            raise InvalidParameterError(f"a refusal pattern does not compile: {e}. Fix the pattern.") from e
        self.patterns = list(patterns)
        super().__init__(column, name)

    @cached_property
    def _rt_rx(self):
        return re.compile("|".join(f"(?:{p})" for p in self.patterns), re.IGNORECASE | re.MULTILINE)

    def decide_text(self, text):
        return "refusal" if self._rt_rx.search(text) else None


#: chat-template tokens of common model families (ChatML, Llama 2/3, Gemma, Phi, Mistral, plain <s>)
TEMPLATE_TOKENS = (r"<\|im_start\|>", r"<\|im_end\|>", r"<\|endoftext\|>", r"<\|eot_id\|>", r"<\|start_header_id\|>",
                   r"<\|end_header_id\|>", r"<\|begin_of_text\|>", r"<\|(?:user|assistant|system|end)\|>",
                   r"<start_of_turn>", r"<end_of_turn>", r"\[/?INST\]", r"<</?SYS>>", r"</?s>")
#: a line that names a chat role, as a template or a transcript writes it ("assistant", "User:", "### Response:")
ROLE_MARKERS = (r"^\s*(?:user|assistant|system|human|gpt|bot)\s*$",
                r"^\s*(?:user|assistant|system|human|ai|gpt|bot)\s*:",
                r"^\s*#{2,}\s*(?:instruction|response|input|output)\s*:?\s*$")
#: the opening of a reply rather than of a request: the model answered in the user's place
ASSISTANT_VOICE = (r"^\W*(?:sure|certainly|of course|absolutely)\b[,!.]",
                   r"^\W*(?:hello|hi|hey)\b[^.?!]{0,40}[.!]\s*how (?:can|may) I (?:help|assist)",
                   r"^\W*how (?:can|may) I (?:help|assist) you\b",
                   r"^\W*I(?:'d| would| am|'m) (?:be )?(?:happy|glad) to help\b")


class InstructionDebris(_TextFilter):
    """Texts that are not an instruction a user wrote (Magpie's instructions, or any user turn a model
    sampled): ``empty`` (no letter or digit), ``template_token`` (a chat-template token such as
    ``<|im_start|>`` or ``[INST]``: :data:`TEMPLATE_TOKENS`), ``role_marker`` (a line naming a role,
    ``assistant`` / ``User:`` / ``### Response:``: :data:`ROLE_MARKERS`), ``assistant_voice`` (it opens like
    a reply, "Sure! ..." / "How can I help you": :data:`ASSISTANT_VOICE`). Checked in that order; the
    patterns are regular expressions (case-insensitive, per line) and each list can be replaced.

    >>> f = InstructionDebris(column="instruction")
    >>> [f.decide_text(t) for t in ["How do I sort a list?", " ", "Hi<|im_end|>", "assistant\\nSure", "Sure! Here it is."]]
    [None, 'empty', 'template_token', 'role_marker', 'assistant_voice']
    """

    _PARAMS = ("column", "template_tokens", "role_markers", "assistant_voice")
    name = "debris"

    def __init__(self, *, column: str | None = None, template_tokens: Sequence[str] = TEMPLATE_TOKENS,
                 role_markers: Sequence[str] = ROLE_MARKERS, assistant_voice: Sequence[str] = ASSISTANT_VOICE,
                 name: str | None = None):
        for what, patterns in (("template_tokens", template_tokens), ("role_markers", role_markers),
                               ("assistant_voice", assistant_voice)):
            if isinstance(patterns, str):
                raise InvalidParameterError(f"{what} must be a list of regular expressions, not one string.")
            try:
                re.compile("|".join(f"(?:{p})" for p in patterns))
            except re.error as e:
                raise InvalidParameterError(f"a pattern of {what} does not compile: {e}. Fix the pattern.") from e
        self.template_tokens, self.role_markers = list(template_tokens), list(role_markers)
        self.assistant_voice = list(assistant_voice)
        super().__init__(column, name)

    @cached_property
    def _rt_rx(self):
        def compile_(patterns):
            return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.MULTILINE) if patterns else None

        return [("template_token", compile_(self.template_tokens)), ("role_marker", compile_(self.role_markers)),
                ("assistant_voice", compile_(self.assistant_voice))]

    def decide_text(self, text):
        if not any(c.isalnum() for c in text):
            return "empty"
        for reason, rx in self._rt_rx:
            if rx is not None and rx.search(text):
                return reason
        return None


class Truncated(TextColumn, Filter):
    """Generations cut by the token limit (``finish_reason == "length"``) -> ``truncated``; failed
    generations (``error_column`` set, or a None text) -> ``failed``. Column names default to
    ``TextGenerator``'s ``{column}_finish_reason`` and ``{column}_error``."""

    _PARAMS = ("column", "finish_reason_column", "error_column")
    name = "truncated"

    def __init__(self, *, column: str | None = None, finish_reason_column: str | None = None,
                 error_column: str | None = None, name: str | None = None):
        check_column_option(column)
        self.column = column
        self.finish_reason_column, self.error_column = finish_reason_column, error_column
        super().__init__(name=name)

    def decide(self, batch, indices=None):
        col = self._text_column(batch)
        finish = self.finish_reason_column or f"{col}_finish_reason"
        error = self.error_column or f"{col}_error"
        check_columns(list(batch.keys()), [finish], "Truncated")
        errors = batch[error] if error in batch else [None] * len(batch[col])
        return ["failed" if e is not None or t is None else ("truncated" if f == "length" else None)
                for t, f, e in zip(batch[col], batch[finish], errors)]
