"""synth-datasets: LLM-driven synthetic data for Hugging Face ``datasets``.

>>> from synth_datasets import LLM, Template, Conditions, TextGenerator  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .errors import (EmptyDatasetError, EndpointError, EndpointUnreachableError, InvalidParameterError,  # noqa: E402
                     MissingVariableError, ModelNotFoundError, SynthDatasetsError, TemplateError)
from .generate import Chain, Dialogue, Gate, Role, SelfInstruct, TextGenerator  # noqa: E402
from .llm import LLM, ChatRequest, Completion, SamplingParams  # noqa: E402
from .prompts import Conditions, Template  # noqa: E402

__all__ = ["LLM", "ChatRequest", "Completion", "SamplingParams", "Template", "Conditions", "TextGenerator",
           "SynthDatasetsError", "InvalidParameterError", "TemplateError", "MissingVariableError",
           "ModelNotFoundError", "EndpointError", "EndpointUnreachableError", "EmptyDatasetError"]
__all__ += ["Chain", "Gate", "Dialogue", "Role", "SelfInstruct"]

from . import curate  # noqa: E402

__all__ += ["curate"]

from .errors import BuilderError, HubAuthError, PublishError  # noqa: E402
from .hub import publish, run_and_publish  # noqa: E402
from .recipe import Recipe  # noqa: E402
from .record import RunRecord  # noqa: E402

__all__ += ["Recipe", "RunRecord", "publish", "run_and_publish", "BuilderError", "HubAuthError", "PublishError"]

from .errors import EndpointConfigError, GenerationError  # noqa: E402

__all__ += ["EndpointConfigError", "GenerationError"]

from .generate import ConceptTree, LLMValues, fit_explained, fit_synthetic  # noqa: E402  (pools a model writes)
from .prompts import Demonstrations, RandomWords, TaskSpec, TemplateRotation  # noqa: E402

__all__ += ["TaskSpec", "TemplateRotation", "LLMValues", "ConceptTree", "RandomWords", "Demonstrations",
            "fit_synthetic", "fit_explained"]

from .distributed import ray_map  # noqa: E402  (imports ray only when called)

__all__ += ["ray_map"]

from ._metric_path import metric_path  # noqa: E402  (evaluate.load(metric_path("diversity")))

__all__ += ["metric_path"]

from .columns import declare_text_column, declared_text_column, texts_of  # noqa: E402

__all__ += ["declare_text_column", "declared_text_column", "texts_of"]

from .generate import ActiveAnnotator, Annotator, Selector, StructuredGenerator, schema_features  # noqa: E402

__all__ += ["StructuredGenerator", "schema_features", "Annotator", "Selector", "ActiveAnnotator"]

from .comparison import CompareResult, compare  # noqa: E402  (techniques x seeds, measured: synth-datasets compare)

__all__ += ["compare", "CompareResult"]

from .generate import Magpie  # noqa: E402  (instruction data without seeds: the model writes the user's turn)

__all__ += ["Magpie"]
