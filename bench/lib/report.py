"""The formatting the benchmarks' reports share: ratios against an in-run baseline, PASS/MISS
verdicts, the summary table of checks, and printing the report's sections."""

from __future__ import annotations

import math

# (what, measured, target, met): one line of a summary
Check = tuple[str, str, str, bool]


def ratio(value: float, baseline: float) -> float:
    """``value`` / ``baseline``; NaN when there is no baseline (0 or NaN)."""
    return value / baseline if baseline else math.nan


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def checks_table(checks: list[Check], title: str = "Summary") -> list[str]:
    """A titled table of checks: what, measured value, target, PASS/MISS; columns as wide as needed."""
    w_name = max(len(name) for name, _, _, _ in checks)
    w_value = max(len("measured"), *(len(value) for _, value, _, _ in checks))
    w_target = max(len("target"), *(len(target) for _, _, target, _ in checks))
    lines = [title, f"  {'':<{w_name}}  {'measured':>{w_value}}  {'target':<{w_target}}"]
    lines += [
        f"  {name:<{w_name}}  {value:>{w_value}}  {target:<{w_target}}  {verdict(ok)}"
        for name, value, target, ok in checks
    ]
    return lines


def print_sections(sections: list[list[str]]) -> None:
    """The report: sections of lines, a blank line before each."""
    print()
    print("\n\n".join("\n".join(s) for s in sections), flush=True)
