"""`beacon models list | show ID | activate ID | verify ID | clear-failed ID | cleanup --keep-days N`:
model versions."""
from __future__ import annotations

import argparse

from beacon.cli.common import MODEL_ID, add_json_flag, bounded_float, bounded_int, emit
from beacon.components_view import component_rows

MAX_KEEP_DAYS = 36_500  # a century: anything above is a typo


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="model versions: list, show, activate, cleanup")
    actions = parser.add_subparsers(dest="models_action", required=True, metavar="ACTION")

    lst = actions.add_parser("list", help="model versions, newest first")
    lst.add_argument("--scope", choices=("global", "user"), help="only this scope")
    lst.add_argument("--user", metavar="EMAIL", help="only this user's fold-in versions")
    lst.add_argument("--limit", type=bounded_int(1, 1_000_000), default=None,
                     help="at most this many")
    add_json_flag(lst)
    lst.set_defaults(handler=list_cmd)

    for name, text, handler in (
        ("show", "one version: hyperparameters, losses, metrics", show_cmd),
        ("activate", "make a version active (rollback)", activate_cmd),
        ("verify", "load a version's weights; unreadable ones are marked failed, readable "
                   "ones lose a failed mark", verify_cmd),
        ("clear-failed", "lift a version's failed mark (admin)", clear_failed_cmd),
    ):
        one = actions.add_parser(name, help=text)
        one.add_argument("id", type=MODEL_ID)
        add_json_flag(one)
        one.set_defaults(handler=handler)

    clean = actions.add_parser(
        "cleanup", help="delete old versions (never an active one nor the newest few)")
    clean.add_argument("--keep-days", type=bounded_float(0, MAX_KEEP_DAYS, "days"), required=True, metavar="N",
                       help="keep every version younger than N days")
    clean.add_argument("--keep-newest", type=bounded_int(0, 1_000_000), default=3, metavar="K",
                       help="always keep the K newest global versions and each user's K newest "
                       "(default 3)")
    clean.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    add_json_flag(clean)
    clean.set_defaults(handler=cleanup_cmd)


def _summary(info) -> dict:
    return {
        "id": info.id, "scope": info.scope, "status": info.status,
        "created_at": info.created_at, "user": info.user, "base_model_id": info.base_model_id,
        "fingerprint": info.fingerprint, "size_bytes": info.size_bytes,
        "training_seconds": info.training_seconds, "created_by": info.created_by,
        "metrics": info.metrics_summary,
    }


def _fmt_ndcg(summary: dict) -> str:
    beacon = (summary.get("metrics") or {}).get("beacon") or {}
    value = beacon.get("ndcg")
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _table(rows: list[dict], serving: int | None) -> str:
    """`serving`: the active global version (a user version on another base is idle)."""
    if not rows:
        return "no model versions yet (python -m beacon train)"
    lines = [f"{'id':>6}  {'scope':6}  {'status':8}  {'created (UTC)':19}  {'ndcg':>6}  user"]
    for r in rows:
        created = r["created_at"].strftime("%Y-%m-%d %H:%M:%S")
        user = r["user"] or ""
        if r["scope"] == "user" and r["status"] == "active" and r["base_model_id"] != serving:
            # a personal vector serves only on its own global version (a rollback to it
            # brings it back)
            user += f" (idle: built on v{r['base_model_id']}, not the active global version)"
        lines.append(f"{r['id']:>6}  {r['scope']:6}  {r['status']:8}  {created:19}  "
                     f"{_fmt_ndcg(r):>6}  {user}")
    return "\n".join(lines)


def list_cmd(args: argparse.Namespace) -> int:
    from beacon.versions import list_versions
    from data_access.models_store import active_global_id

    scope = args.scope or ("user" if args.user else None)
    rows = [_summary(v) for v in list_versions(scope=scope, user=args.user, limit=args.limit)]
    emit(args, rows, lambda listed: _table(listed, active_global_id()))
    return 0


def _loss_text(entry) -> str:
    """An entry is a number or the model's {"epoch", "loss", "phase", ...} record."""
    value = entry.get("loss") if isinstance(entry, dict) else entry
    text = f"{value:.4f}" if isinstance(value, (int, float)) else str(value)
    if isinstance(entry, dict) and entry.get("phase") not in (None, "train"):
        text += f" ({entry['phase']})"
    return text


def _detail(payload: dict) -> str:
    lines = [f"model version {payload['id']} ({payload['scope']}, {payload['status']})"]
    for key in ("user", "base_model_id", "created_at", "created_by", "activated_at",
                "fingerprint", "size_bytes", "training_seconds", "model_type"):
        if payload.get(key) is not None:
            lines.append(f"  {key}: {payload[key]}")
    if payload.get("counts"):
        lines.append(f"  counts: {payload['counts']}")
    if payload.get("loss_history"):
        losses = ", ".join(_loss_text(x) for x in payload["loss_history"])
        lines.append(f"  loss per epoch: {losses}")
    convergence = payload.get("convergence") or {}
    if convergence:
        lines.append(f"  early stopping: best epoch {convergence['best_epoch']} of "
                     f"{convergence['validation_epochs']} validated (cap {convergence['epochs']})")
    if convergence.get("retry_note"):
        lines.append(f"  learning rate: {convergence['retry_note']}")
    if convergence.get("note"):
        lines.append(f"  warning: {convergence['note']}")
    rows = component_rows(payload.get("components") or {})
    if rows:
        lines.append("  components (chosen on validation):")
        lines.extend(f"    {row['component']}: {row['state']}, {row['chose']}"
                     + (f" (validation NDCG {row['validation']})" if row["validation"] else "")
                     for row in rows)
    if payload.get("hyperparameters"):
        lines.append(f"  hyperparameters: {payload['hyperparameters']}")
    if payload.get("metrics"):
        lines.append(f"  metrics: {payload['metrics']}")
    return "\n".join(lines)


def show_cmd(args: argparse.Namespace) -> int:
    from beacon.versions import show

    emit(args, show(args.id).to_dict(), _detail)
    return 0


def activate_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.versions import activate

    info = activate(args.id, actor=cli_actor())
    emit(args, _summary(info), lambda p: f"model version {p['id']} ({p['scope']}"
         + (f", {p['user']}" if p["user"] else "") + ") is now active")
    return 0


def verify_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.versions import verify

    result = verify(args.id, actor=cli_actor())
    emit(args, result.to_dict(), lambda p: f"model version {p['version_id']}: "
         + ("ok, " if p["ok"] else "unreadable, ") + f"{p['status']} ({p['detail']})")
    return 0 if result.ok else 1


def clear_failed_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.versions import clear_failed

    info = clear_failed(args.id, actor=cli_actor())
    emit(args, _summary(info), lambda p: f"model version {p['id']} is {p['status']} again")
    return 0


def cleanup_cmd(args: argparse.Namespace) -> int:
    from beacon.actions import cli_actor
    from beacon.versions import cleanup

    result = cleanup(args.keep_days, keep_newest=args.keep_newest, dry_run=args.dry_run,
                     actor=cli_actor())
    payload = {**result.to_dict(), "deleted": [_summary(v) for v in result.deleted]}  # as list

    def human(p: dict) -> str:
        verb = "would delete" if p["dry_run"] else "deleted"
        ids = ", ".join(str(v["id"]) for v in p["deleted"]) or "nothing"
        return f"{verb} {p['count']} model version(s): {ids}"

    emit(args, payload, human)
    return 0
