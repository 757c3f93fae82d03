"""LLM backends behind one small interface, with a response cache in front."""

from .base import Backend, ChatRequest, Completion, SamplingParams
from .cache import ResponseCache, default_cache_path
from .identity import embedded_model_path
from .llm import LLM
from .models import MODELS, NamedModel

__all__ = ["LLM", "Backend", "ChatRequest", "Completion", "SamplingParams", "ResponseCache",
           "default_cache_path", "embedded_model_path", "MODELS", "NamedModel"]
