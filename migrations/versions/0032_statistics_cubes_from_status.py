"""statistics: the cubes' tenth breakdown, the status an event leaves (``from_status``), filled here from
the events already stored; with the to-status every cell carries it gives a stock by status (entries
minus exits), so the console reads stocks from the cubes too

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-04 18:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    month = "date(day, 'start of month')" if sqlite else "CAST(date_trunc('month', day) AS DATE)"
    prefecture = "substr(region_code, 1, 4) || '00'"
    status = "coalesce(from_status, '')"
    op.execute(
        "INSERT INTO stats_cube (source, dimension, day, kind, to_status, region_code, value, count) "
        f"SELECT source, 'from_status', day, kind, coalesce(to_status, ''), region_code, {status}, count(*) "
        f"FROM stats_events GROUP BY source, day, kind, coalesce(to_status, ''), region_code, {status}")
    op.execute(
        "INSERT INTO stats_month_cube (source, dimension, month, kind, to_status, region_code, value, count) "
        f"SELECT source, 'from_status', {month}, kind, coalesce(to_status, ''), {prefecture}, {status}, count(*) "
        f"FROM stats_events GROUP BY source, {month}, kind, coalesce(to_status, ''), {prefecture}, {status}")


def downgrade() -> None:
    op.execute("DELETE FROM stats_cube WHERE dimension = 'from_status'")
    op.execute("DELETE FROM stats_month_cube WHERE dimension = 'from_status'")
