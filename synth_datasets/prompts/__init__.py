"""Prompting: templates, condition sampling, demonstrations."""

from .conditions import Conditions
from .template import Template

__all__ = ["Conditions", "Template"]
