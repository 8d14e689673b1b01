"""Approvals signed with SSH keys (git's gpg.format=ssh), verified against the repository's allowed_signers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from promptops.errors import Forbidden, NotApproved
from promptops.store import PromptStore
from tests.conftest import GitRepo, prompt_doc


def keypair(directory: Path, email: str) -> Path:
    key = directory / email.split("@")[0]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(key)], check=True)
    return key


def sign_with(repo: GitRepo, key: Path | None) -> None:
    repo.git("config", "gpg.format", "ssh")
    repo.git("config", "user.signingkey", str(key) + ".pub" if key else "")


@pytest.fixture
def signed(repo: GitRepo, tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, Path, Path]:
    """prompts/a.json v1, v2; allowed_signers lists ada only; mallory has a key that is not listed."""
    keys = tmp_path_factory.mktemp("keys")
    ada, mallory = keypair(keys, "ada@example.com"), keypair(keys, "mallory@example.com")
    line = f'ada@example.com namespaces="git" {(keys / "ada.pub").read_text()}'
    repo.commit({"prompts/a.json": prompt_doc(user="one"), "allowed_signers": line}, "v1")
    repo.commit({"prompts/a.json": prompt_doc(user="two")}, "v2")
    return repo, ada, mallory


def test_good_signature_serves_under_the_signed_policy(signed: tuple[GitRepo, Path, Path]) -> None:
    repo, ada, _ = signed
    sign_with(repo, ada)
    PromptStore(repo.path).approve("a", 2, sign=True)
    store = PromptStore(repo.path, signed_approvals=True)
    assert store.resolve("a").version.number == 2
    assert str(store.signature(store.versions("a")[1])) == "signed by ada@example.com"


@pytest.mark.parametrize(("signer", "state"), [("mallory", "bad signature (No principal matched.)"),
                                               (None, "unsigned")])
def test_forged_and_unsigned_approvals_do_not_serve(signed: tuple[GitRepo, Path, Path], signer: str | None,
                                                    state: str) -> None:
    repo, ada, mallory = signed
    sign_with(repo, {"mallory": mallory, None: None}[signer])
    PromptStore(repo.path).approve("a", 2, sign=signer is not None)
    store = PromptStore(repo.path, signed_approvals=True)
    with pytest.raises(NotApproved):
        store.resolve("a")
    assert str(store.signature(store.versions("a")[1])) == state
    assert PromptStore(repo.path).resolve("a").version.number == 2  # without the policy, any tag counts


def test_four_eyes_refuses_the_author(signed: tuple[GitRepo, Path, Path]) -> None:
    repo, _, _ = signed
    store = PromptStore(repo.path, four_eyes=True)
    with pytest.raises(Forbidden, match="Ada Author <ada@example.com> wrote a v2 and may not approve it"):
        store.approve("a", 2)
    version, created = store.approve("a", 2, approver=("Bo Reviewer", "bo@example.com"))
    assert created and "Approved-by: Bo Reviewer <bo@example.com>" in repo.git("tag", "-l", "--format=%(contents)",
                                                                               "prompts/a/v2")
