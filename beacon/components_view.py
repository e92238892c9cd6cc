"""What a model version's components chose on validation, as rows an operator reads: one row
per component, whether it is on, what it chose, and the validation NDCG without and with it.

The stored report (`training.components_report`) is the source; versions trained before it
was kept have none, and a per-user version has its base version's components."""
from __future__ import annotations

from typing import Any

#: component key -> the name shown, with what it does in a few words
COMPONENT_NAMES = {
    "coattendance": "Co-attendance (who registered for the same events)",
    "content": "Content (new events, by their words)",
    "trend": "Trend (what people registered for lately)",
}


def component_rows(components: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per component in `components` (a version's stored report): component, state
    ("on" / "off"), chose (a short description) and validation ("a -> b": NDCG@k of the model
    without and with it; empty when not measured). No rows for an empty report."""
    describe = {"coattendance": _coattendance, "content": _content, "trend": _trend}
    rows = []
    for key, name in COMPONENT_NAMES.items():
        report = components.get(key)
        if not isinstance(report, dict):
            continue
        on, chose, validation = describe[key](report)
        rows.append({"component": name, "state": "on" if on else "off", "chose": chose,
                     "validation": validation})
    return rows


def component_comparison(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]],
                         a_label: str, b_label: str) -> list[dict[str, Any]]:
    """Two versions' component rows (`component_rows`) side by side: component, then what each
    chose ("not recorded" where a version has no report)."""
    by_a = {row["component"]: row for row in rows_a}
    by_b = {row["component"]: row for row in rows_b}
    return [{"component": name, a_label: _summary(by_a.get(name)),
             b_label: _summary(by_b.get(name))}
            for name in COMPONENT_NAMES.values() if name in by_a or name in by_b]


def _summary(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not recorded"
    return row["chose"] if row["state"] == "on" else f"off ({row['chose']})"


def _coattendance(report: dict[str, Any]) -> tuple[bool, str, str]:
    weight = _number(report.get("weight"))
    validation = _gain(report.get("validation_hybrid_ndcg"), report.get("validation_blend_ndcg"))
    if not weight:
        return False, "did not beat the model without it", validation
    recency = _number(report.get("recency"))
    decay = (f"history weighed newest first (half-life {recency:.0%} of it)" if recency
             else "every past registration counts the same")
    return True, (f"weight {weight:g}, lambda {_number(report.get('lambda')):g}, {decay}, "
                  f"{int(report.get('events') or 0):,} events"), validation


def _content(report: dict[str, Any]) -> tuple[bool, str, str]:
    weight = _number(report.get("weight"))
    validation = _gain(report.get("validation_hybrid_ndcg"), report.get("validation_blend_ndcg"))
    if not weight:
        return False, "did not beat the model alone on events new to it", validation
    neighbours = int(report.get("neighbours") or 0)
    profile = (f"{neighbours} most similar past events" if neighbours
               else "the whole profile of past events")
    popularity = _number(report.get("popularity_weight"))
    lift = f", the terms' recent popularity x{popularity:g}" if popularity else ""
    return True, (f"weight {weight:g} on events new to the model, {profile}{lift}, "
                  f"{int(report.get('terms') or 0):,} terms"), validation


def _trend(report: dict[str, Any]) -> tuple[bool, str, str]:
    known = _number(report.get("weight_known"))
    new = _number(report.get("weight_new"))
    ndcg = report.get("validation_ndcg") or {}
    validation = " / ".join(
        _gain((ndcg.get(group) or {}).get("alone"), (ndcg.get(group) or {}).get("blend"))
        for group in ("known", "new") if isinstance(ndcg.get(group), dict))
    if not known and not new:
        return False, "did not beat the model without it", validation
    half_life = _number(report.get("half_life_days"))
    return True, (f"weight {known:g} for users with history, {new:g} for users without, "
                  f"half-life {half_life:g} days"), validation


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _gain(without: Any, with_it: Any) -> str:
    """"0.128 -> 0.197" (or just the first figure when the component was not kept)."""
    if not isinstance(without, (int, float)):
        return ""
    if not isinstance(with_it, (int, float)):
        return f"{without:.3f}"
    return f"{without:.3f} -> {with_it:.3f}"
