"""Shared wording of batch-job summaries."""

from __future__ import annotations


def skipped_lines(skipped: list[tuple[str, str]], max_named: int = 10) -> list[str]:
    """One line per skipped record (``what: why``), the first ``max_named`` of them, then a count of the rest."""
    out = [f"  skipped {what}: {why}" for what, why in skipped[:max_named]]
    if len(skipped) > max_named:
        out.append(f"  ... and {len(skipped) - max_named} more skipped")
    return out
