"""Generation (survey §3.1): map-callables that call an LLM."""

from .text import TextGenerator

__all__ = ["TextGenerator"]
