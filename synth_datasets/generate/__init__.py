"""Generation (survey §3.1): map-callables that call an LLM."""

from .chain import Chain, Dialogue, Gate, Role
from .loops import Expand, Loop, RoundRecord, SelfInstruct
from .text import TextGenerator

__all__ = ["TextGenerator", "Chain", "Gate", "Dialogue", "Role", "Loop", "RoundRecord", "SelfInstruct", "Expand"]

from .schema import Schema, schema_features  # noqa: E402
from .structured import StructuredGenerator  # noqa: E402
from .annotate import Annotator, annotation_report, expected_calibration_error  # noqa: E402
from .select import Selector  # noqa: E402
from .active import ActiveAnnotator  # noqa: E402
from .targeted import S3, ExploreInstruct  # noqa: E402

__all__ += ["StructuredGenerator", "Schema", "schema_features", "Annotator", "annotation_report",
            "expected_calibration_error", "Selector", "ActiveAnnotator", "S3", "ExploreInstruct"]

from .base import Generator  # noqa: E402
from .pools import ConceptTree, LLMValues, fit_explained, fit_synthetic  # noqa: E402

__all__ += ["Generator", "LLMValues", "ConceptTree", "fit_synthetic", "fit_explained"]

from .magpie import Magpie  # noqa: E402  (instructions sampled from the chat template alone)

__all__ += ["Magpie"]
