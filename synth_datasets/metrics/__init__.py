"""Evaluation (survey §3.3): implementations behind the evaluate modules in metrics/. Not built yet."""
