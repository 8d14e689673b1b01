"""The tables, in SQLAlchemy Core. Their history is in `migrations/versions/`: a change here needs a new
revision there (tests/state/test_migrations.py fails until the two agree)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

requests = sa.Table(
    "requests", metadata,
    sa.Column("id", sa.Text(), primary_key=True),
    sa.Column("at", sa.Double(), nullable=False),
    sa.Column("prompt", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer()),
    sa.Column("label", sa.Text()),
    sa.Column("canary", sa.Boolean(), nullable=False),
    sa.Column("endpoint", sa.Text(), nullable=False),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("error", sa.Text()),
    sa.Column("latency_ms", sa.Double()),
    sa.Column("ttft_ms", sa.Double()),
    sa.Column("prompt_tokens", sa.Integer()),
    sa.Column("completion_tokens", sa.Integer()),
    sa.Column("replica", sa.Text(), nullable=False),
    sa.Index("ix_requests_prompt_label_at", "prompt", "label", "at"),
)

# One feedback per (request, user): the primary key is the upsert's conflict target, and its leading column
# serves lookups by request id. Anonymous feedback is stored with user_id "" (NULLs would never conflict).
feedback = sa.Table(
    "feedback", metadata,
    sa.Column("request_id", sa.Text(), sa.ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.Text(), primary_key=True),
    sa.Column("score", sa.Double(), nullable=False),
    sa.Column("comment", sa.Text()),
    sa.Column("at", sa.Double(), nullable=False),
    sa.CheckConstraint("score >= 0 AND score <= 1", name="ck_feedback_score"),
)
