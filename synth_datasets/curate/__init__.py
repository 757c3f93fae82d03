"""Curation (survey §3.2): filters, dedup, judges, confidence, re-weighting, human review. Not built yet."""
