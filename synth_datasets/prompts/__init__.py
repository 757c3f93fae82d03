"""Prompting (survey §3.1.1): task specification, generation conditions, in-context demonstrations."""

from .conditions import Conditions
from .demos import Demonstrations
from .pools import Pool
from .rotation import TemplateRotation
from .spec import TaskSpec
from .template import Template
from .words import RandomWords

__all__ = ["Conditions", "Template", "TaskSpec", "TemplateRotation", "RandomWords", "Pool", "Demonstrations"]
# The pools a model writes (LLMValues, ConceptTree) and fit_synthetic / fit_explained are in synth_datasets.generate.
