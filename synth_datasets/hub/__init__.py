"""Publishing: dataset card with provenance, report with plots, local folder or one-commit Hub push."""

from .card import build_card, card_data
from .publish import PublishResult, check_hub_access, check_repo_id, publish, push_folder
from .report import render_report
from .run import run_and_publish

__all__ = ["publish", "push_folder", "PublishResult", "check_hub_access", "check_repo_id", "build_card",
           "card_data", "render_report", "run_and_publish"]
