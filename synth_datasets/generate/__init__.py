"""Generation (survey §3.1): map-callables that call an LLM."""

from .chain import Chain, Dialogue, Gate, Role
from .loops import Expand, Loop, RoundRecord, SelfInstruct
from .text import TextGenerator

__all__ = ["TextGenerator", "Chain", "Gate", "Dialogue", "Role", "Loop", "RoundRecord", "SelfInstruct", "Expand"]
