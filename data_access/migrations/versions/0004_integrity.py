"""Integrity: one account per email (case duplicates merged), ids that are never reused on
SQLite, and folded skipped trainings.

- users: every email trimmed and lowercased; accounts that differed only in case or spaces are
  merged into the oldest one (interactions, interests, fold-in versions and training runs move
  over; exact duplicate interactions are dropped once); then a CHECK keeps emails normalized.
- beacon_models, training_runs, interactions: AUTOINCREMENT on SQLite, so the id of a deleted
  row is never handed out again (impressions and the metrics rollup keep naming old ids).
  Postgres sequences never reuse ids already.
- training_runs: `repeats` and `last_seen_at` fold consecutive identical skipped smart
  retrains into one row; `skip_key` says what made two skips identical.

Revision ID: 0004
Revises: 0003
"""
import logging

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
EMAIL_CHECK = "email = lower(trim(email))"


def _normalize(email):
    return (email or "").strip().lower()


def _merge_into(bind, keep: int, dup: int) -> None:
    params = {"keep": keep, "dup": dup}
    for statement in (
        "INSERT INTO user_interests (user_id, tag) SELECT :keep, tag FROM user_interests d "
        "WHERE d.user_id = :dup AND NOT EXISTS (SELECT 1 FROM user_interests k "
        "WHERE k.user_id = :keep AND k.tag = d.tag)",
        "DELETE FROM user_interests WHERE user_id = :dup",
        # the same interaction logged under both spellings is one interaction
        "DELETE FROM interactions WHERE user_id = :dup AND EXISTS (SELECT 1 FROM interactions k "
        "WHERE k.user_id = :keep AND k.event_id = interactions.event_id "
        "AND k.type = interactions.type AND k.occurred_at = interactions.occurred_at)",
        "UPDATE interactions SET user_id = :keep WHERE user_id = :dup",
        "DELETE FROM user_recommendations WHERE user_id = :dup",
        "UPDATE beacon_models SET status = 'inactive' WHERE user_id = :dup AND status = 'active' "
        "AND EXISTS (SELECT 1 FROM beacon_models k WHERE k.user_id = :keep "
        "AND k.status = 'active')",
        "UPDATE beacon_models SET user_id = :keep WHERE user_id = :dup",
        "UPDATE training_runs SET user_id = :keep WHERE user_id = :dup",
        "UPDATE users SET name = coalesce(name, (SELECT name FROM users WHERE id = :dup)), "
        "city = coalesce(city, (SELECT city FROM users WHERE id = :dup)) WHERE id = :keep",
        "UPDATE users SET latitude = (SELECT latitude FROM users WHERE id = :dup), "
        "longitude = (SELECT longitude FROM users WHERE id = :dup) "
        "WHERE id = :keep AND latitude IS NULL",
        "DELETE FROM users WHERE id = :dup",
    ):
        bind.execute(sa.text(statement), params)
    bind.execute(sa.text("DELETE FROM training_locks WHERE scope_key = :key"),
                 {"key": f"user:{dup}"})


def _merge_case_duplicates() -> None:
    bind = op.get_bind()
    groups: dict[str, list[int]] = {}
    spelled: dict[int, str] = {}
    for user_id, email in bind.execute(sa.text("SELECT id, email FROM users ORDER BY id")):
        groups.setdefault(_normalize(email), []).append(int(user_id))
        spelled[int(user_id)] = email
    merged = 0
    for email, ids in groups.items():
        keep, dups = ids[0], ids[1:]
        for dup in dups:
            _merge_into(bind, keep, dup)
            log.info("merged user %s (%r) into user %s (%r)", dup, spelled[dup], keep, email)
            merged += 1
        if spelled[keep] != email:
            bind.execute(sa.text("UPDATE users SET email = :email WHERE id = :id"),
                         {"email": email, "id": keep})
    if merged:
        log.warning("merged %d user account(s) whose email differed only in case or spaces",
                    merged)


def upgrade() -> None:
    _merge_case_duplicates()
    sqlite = op.get_bind().dialect.name == "sqlite"
    autoincrement = {"recreate": "always", "table_kwargs": {"sqlite_autoincrement": True}} \
        if sqlite else {}
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_check_constraint('ck_users_email_normalized', sa.text(EMAIL_CHECK))
    with op.batch_alter_table('training_runs', schema=None, **autoincrement) as batch_op:
        batch_op.add_column(sa.Column('repeats', sa.Integer(), server_default='1',
                                      nullable=False))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('skip_key', sa.String(length=200), nullable=True))
    if sqlite:
        for table in ('beacon_models', 'interactions'):
            with op.batch_alter_table(table, schema=None, **autoincrement):
                pass


def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_column('skip_key')
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('repeats')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint('ck_users_email_normalized', type_='check')
