"""The initial schema: releases, scans, findings, fingerprints, decisions, API tokens and the
watcher's state.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.String(256)),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blob_path", sa.Text),
        sa.Column("latest_scan_id", sa.Integer),
        sa.UniqueConstraint("sha256", "filename", name="uq_releases_sha256_filename"),
    )
    op.create_index("ix_releases_name", "releases", ["name"])
    op.create_index("ix_releases_sha256", "releases", ["sha256"])
    op.create_index("ix_releases_first_seen", "releases", ["first_seen"])
    op.create_index("ix_releases_latest_scan_id", "releases", ["latest_scan_id"])

    op.create_table(
        "scans",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("requested", sa.String(600)),
        sa.Column("dedupe_key", sa.String(700), unique=True),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("verdict", sa.String(16)),
        sa.Column("score", sa.Float),
        sa.Column("categories", sa.Text),
        sa.Column("triggers", sa.Text),
        sa.Column("max_severity", sa.String(16)),
        sa.Column("model_version", sa.String(64)),
        sa.Column("pkgvet_version", sa.String(32)),
        sa.Column("result_json", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("submitted_by", sa.String(128)),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_scans_release_id", "scans", ["release_id"])
    op.create_index("ix_scans_status", "scans", ["status"])
    op.create_index("ix_scans_verdict", "scans", ["verdict"])
    op.create_index("ix_scans_finished_at", "scans", ["finished_at"])

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "scan_id",
            sa.Integer,
            sa.ForeignKey("scans.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("confidence", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("snippet", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("decoded_depth", sa.Integer, nullable=False),
    )
    op.create_index("ix_findings_rule_id", "findings", ["rule_id"])
    op.create_index("ix_findings_scan_id_category", "findings", ["scan_id", "category"])

    op.create_table(
        "fingerprints",
        sa.Column(
            "release_id",
            sa.Integer,
            sa.ForeignKey("releases.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_table(
        "fingerprint_bands",
        sa.Column(
            "release_id",
            sa.Integer,
            sa.ForeignKey("releases.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("band", sa.Integer, primary_key=True),
        sa.Column("value", sa.String(16), nullable=False),
    )
    op.create_index("ix_fingerprint_bands_band_value", "fingerprint_bands", ["band", "value"])

    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_decisions_release_id", "decisions", ["release_id"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )

    op.create_table(
        "watch_state",
        sa.Column("feed", sa.String(512), primary_key=True),
        sa.Column("cursor", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "watch_seen",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("feed", sa.String(512), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.String(256), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("feed", "name", "version", name="uq_watch_seen_feed_name_version"),
    )


def downgrade() -> None:
    for table in (
        "watch_seen",
        "watch_state",
        "api_tokens",
        "decisions",
        "fingerprint_bands",
        "fingerprints",
        "findings",
        "scans",
        "releases",
    ):
        op.drop_table(table)
