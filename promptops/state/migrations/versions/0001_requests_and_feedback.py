"""Request records and feedback.

Revision ID: 0001
Revises: none
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
        "requests",
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
    )
    op.create_index("ix_requests_prompt_label_at", "requests", ["prompt", "label", "at"])
    op.create_table(
        "feedback",
        sa.Column("request_id", sa.Text(), sa.ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("at", sa.Double(), nullable=False),
        sa.CheckConstraint("score >= 0 AND score <= 1", name="ck_feedback_score"),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("ix_requests_prompt_label_at", table_name="requests")
    op.drop_table("requests")
