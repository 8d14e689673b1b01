"""Under PROMPTOPS_APPROVALS=signed the gateway serves only approvals whose SSH signature verifies."""

from __future__ import annotations

import pytest

from tests.store.test_signed_approvals import keypair, sign_with


@pytest.fixture
def keys(repo, prompts, tmp_path_factory):
    """allowed_signers lists ada; mallory's key is not in it. support v1 carries an UNSIGNED approval."""
    directory = tmp_path_factory.mktemp("keys")
    ada, mallory = keypair(directory, "ada@example.com"), keypair(directory, "mallory@example.com")
    repo.commit({"allowed_signers": f'ada@example.com namespaces="git" {(directory / "ada.pub").read_text()}'},
                "who may sign approvals")
    return {"ada": ada, "mallory": mallory}


@pytest.mark.parametrize(("signer", "served"), [("ada", 200), ("mallory", 404), (None, 404)])
def test_only_verified_approvals_serve(repo, prompts, keys, make_client, signer, served):
    sign_with(repo, keys.get(signer))
    repo.git("tag", "-d", "prompts/support/v1")
    repo.git("tag", "-s" if signer else "-a", "-m", "approve", "prompts/support/v1", prompts["support@1"])
    answer = make_client(approvals="signed").post("/v1/chat", json={"prompt": "support", "message": "hi"})
    assert answer.status_code == served, answer.text
    if served == 404:
        assert answer.json()["error"]["type"] == "not_approved"
    assert make_client().post("/v1/chat", json={"prompt": "support", "message": "hi"}).status_code == 200
