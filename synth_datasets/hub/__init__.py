"""Publishing: dataset cards with provenance, one-commit Hub push. Not built yet."""
