"""`promptops export`: the snapshot an app bundles, read back by the SDK when the gateway is down."""

from __future__ import annotations

import json

import pytest

from promptops.client import PromptOpsWarning, Prompts
from tests.cli.test_versions import run
from tests.conftest import GitRepo, prompt_doc


@pytest.fixture
def approved(repo: GitRepo) -> GitRepo:
    """a: v1 approved, v2 not, production -> v1; b: v1, never approved."""
    repo.commit({"prompts/a.json": prompt_doc(user="u1")}, "a v1")
    repo.git("tag", "-a", "-m", "ok", "prompts/a/v1")
    repo.commit({"prompts/a.json": prompt_doc(user="u2"), "prompts/b.json": prompt_doc()}, "a v2, b v1")
    repo.commit({"labels.json": {"protected": ["production"], "labels": {"a": {"production": 1}}}}, "labels")
    return repo


def test_export_writes_every_served_version(approved: GitRepo) -> None:
    code, _, err = run("export", "--output", "snap.json")
    snapshot = json.loads((approved.path / "snap.json").read_text())
    assert code == 0 and sorted(snapshot["prompts"]) == ["a", "a@production"]
    assert "skipped b: no approved version" in err
    with pytest.warns(PromptOpsWarning):
        version = Prompts(url="http://127.0.0.1:9", snapshot=approved.path / "snap.json", timeout_s=2).get("a")
    assert (version.version, version.render()) == (1, "u1")


def test_export_a_named_prompt_without_an_approved_version_fails(approved: GitRepo) -> None:
    code, _, err = run("export", "b")
    assert code == 1 and "b" in err and not (approved.path / "prompts.snapshot.json").exists()
