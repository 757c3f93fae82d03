"""Target-aware generation: aim the data at a small labelled real sample (``--examples FILE``).

The sample is loaded and checked before any model call (:func:`load_examples`), split into a train part
and a held-out part, and used the ways the survey lists: per-label in-context demos (random or nearest),
its length and register as explicit targets (asked length, stop rule, token budget), attribute values
mined from it by the model (:func:`propose_attributes`, AttrPrompt), a faithfulness gate on a
real-vs-synthetic discriminator (:class:`RealnessGate`, or :class:`RealnessWeights`), and a held-out
measurement for the card (:class:`CloseToReal`: TSTR/TRTR and a distribution distance).

>>> from synth_datasets.target import load_examples, RealnessGate, CloseToReal   # doctest: +SKIP
"""

from .attributes import ClassAttributes, ProposedAttributes, parse_items, propose_attributes
from .examples import MAX_ROWS, MIN_ROWS, DropColumns, Examples, LengthTarget, load_examples
from .gate import CloseToReal, RealnessGate, RealnessWeights, add_realness_steps, discriminator_scores

__all__ = ["Examples", "DropColumns", "LengthTarget", "load_examples", "MIN_ROWS", "MAX_ROWS", "RealnessGate", "RealnessWeights",
           "CloseToReal", "add_realness_steps", "discriminator_scores", "ClassAttributes", "ProposedAttributes", "propose_attributes", "parse_items"]
