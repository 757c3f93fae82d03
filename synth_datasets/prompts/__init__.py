"""Prompting (survey §3.1.1): task specification, generation conditions, in-context demonstrations."""

from .conditions import Conditions
from .demos import Demonstrations
from .pools import ConceptTree, LLMValues, Pool
from .rotation import TemplateRotation
from .spec import TaskSpec
from .template import Template
from .words import RandomWords

__all__ = ["Conditions", "Template", "TaskSpec", "TemplateRotation", "LLMValues", "ConceptTree", "RandomWords",
           "Pool", "Demonstrations"]
