"""Release labels through the gateway: bare names via `production`, `name@LABEL`, promote, rollback.

`labelled`: support v1 and v2 approved, production -> v1, staging -> v2; fresh v1 not approved.
"""

from __future__ import annotations

import pytest

SERVED = [  # (ref, version served, X-Prompt-Label)
    ("support", "1", "production"),  # the production label wins over the newest approval (v2)
    ("support@staging", "2", "staging"),
    ("support@2", "2", None),
]


def ask(client, ref: str, endpoint: str = "chat"):
    if endpoint == "chat":
        return client.post("/v1/chat", json={"prompt": ref, "message": "hi"})
    return client.post("/v1/chat/completions", json={"model": ref, "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize("endpoint", ["chat", "openai"])
@pytest.mark.parametrize("ref, version, label", SERVED)
def test_a_label_chooses_the_version(labelled, client, endpoint, ref, version, label):
    response = ask(client, ref, endpoint)
    assert response.status_code == 200, response.text
    assert (response.headers["x-prompt-version"], response.headers.get("x-prompt-label")) == (version, label)
    text = response.json()["text"] if endpoint == "chat" else response.json()["choices"][0]["message"]["content"]
    assert text == f"S{version} hi"


def test_chat_answer_names_the_label(labelled, client):
    assert ask(client, "support@staging").json()["label"] == "staging"


def test_show_a_version_by_label(labelled, client):
    body = client.get("/v1/prompts/support?ref=staging").json()
    assert (body["version"]["version"], body["label"], body["version"]["labels"]) == (2, "staging", ["staging"])


def test_list_and_versions_show_labels(labelled, client):
    rows = {p["name"]: p for p in client.get("/v1/prompts").json()["prompts"]}
    assert (rows["support"]["labels"], rows["fresh"]["labels"]) == ({"production": 1, "staging": 2}, {})
    versions = client.get("/v1/prompts/support/versions").json()["versions"]
    assert [v["labels"] for v in versions] == [["production"], ["staging"]]


def test_labels_with_their_history(labelled, client, owner, repo):
    client.post("/v1/prompts/support/promote", json={"ref": "2", "label": "production"}, headers=owner)
    body = client.get("/v1/prompts/support/labels").json()
    production, staging = body["labels"]["production"], body["labels"]["staging"]
    assert (production["version"], production["protected"], staging["protected"]) == (2, True, False)
    assert production["history"] == [{"commit": labelled["labels"], "version": 1},
                                     {"commit": repo.git("rev-parse", "HEAD"), "version": 2}]
    assert staging["history"] == [{"commit": labelled["labels"], "version": 2}]


def test_promote_commits_and_the_bare_name_follows(labelled, client, person, repo):
    dee = person("Dee Deployer", "deployer")
    moved = client.post("/v1/prompts/support/promote", json={"ref": "staging", "label": "production"},
                        headers=dee).json()
    assert (moved["old"], moved["new"], moved["commit"]) == (1, 2, repo.git("rev-parse", "HEAD"))
    assert moved["version"]["labels"] == ["production", "staging"]
    assert "Promote support v2 to production" in repo.git("log", "-1", "--format=%B")
    assert repo.git("log", "-1", "--format=%an <%ae>") == "Dee Deployer <dee@example.com>"  # who moved it
    response = ask(client, "support")
    assert (response.json()["text"], response.headers["x-prompt-label"]) == ("S2 hi", "production")


def test_rollback_returns_to_the_previous_version(labelled, client, person, repo):
    client.post("/v1/prompts/support/promote", json={"ref": "2", "label": "production"},
                headers=person("Dee Deployer", "deployer"))
    back = client.post("/v1/prompts/support/rollback", json={"label": "production"},
                       headers=person("Rob Roller", "deployer")).json()
    assert (back["old"], back["new"]) == (2, 1)
    assert repo.git("log", "-1", "--format=%an <%ae>") == "Rob Roller <rob@example.com>"
    assert ask(client, "support").headers["x-prompt-version"] == "1"


REFUSED = [  # (prompt, action, body, status, error type)
    ("fresh", "promote", {"ref": "1", "label": "production"}, 409, "protected_label"),  # v1 is not approved
    ("fresh", "rollback", {"label": "staging"}, 409, "label_refused"),  # it never had that label
    ("support", "rollback", {"label": "staging"}, 409, "label_refused"),  # no earlier staging version
    ("support", "promote", {"ref": "9", "label": "staging"}, 404, "version_not_found"),
    ("support", "promote", {"ref": "1", "label": "head"}, 400, "ref_error"),  # reserved word
    ("support", "promote", {"ref": "1", "label": "Prod uction"}, 400, "ref_error"),
]


@pytest.mark.parametrize("name, action, body, status, kind", REFUSED)
def test_refused_label_moves_change_nothing(labelled, client, owner, repo, name, action, body, status, kind):
    response = client.post(f"/v1/prompts/{name}/{action}", json=body, headers=owner)
    assert (response.status_code, response.json()["error"]["type"]) == (status, kind), response.text
    assert response.json()["error"]["fix"]
    assert repo.git("rev-parse", "HEAD") == labelled["labels"]


def test_an_unprotected_label_may_point_at_an_unapproved_version(labelled, client, owner):
    assert client.post("/v1/prompts/fresh/promote", json={"ref": "1", "label": "staging"},
                       headers=owner).status_code == 200
    assert ask(client, "fresh@staging").headers["x-prompt-label"] == "staging"


WRITES = [  # (settings, authorization header, status)
    ({}, None, 401),
    ({}, "Bearer wrong", 401),
    ({"admin_token": "s3cret"}, None, 401),
    ({"admin_token": "s3cret"}, "Bearer wrong", 401),
    ({"admin_token": "s3cret"}, "Bearer s3cret", 200),
    ({"host": "0.0.0.0"}, None, 401),
    ({"host": "0.0.0.0", "admin_token": "s3cret"}, "Bearer s3cret", 200),
]


@pytest.mark.parametrize("action", ["promote", "rollback"])
@pytest.mark.parametrize("change, auth, status", WRITES)
def test_label_moves_need_a_deployer(labelled, make_client, repo, action, change, auth, status):
    client = make_client(**change)
    client.post("/v1/prompts/support/promote", json={"ref": "2", "label": "production"},
                headers={"authorization": "Bearer s3cret"})  # something to roll back where allowed
    headers = {"authorization": auth} if auth else {}
    body = {"ref": "1", "label": "staging"} if action == "promote" else {"label": "production"}
    response = client.post(f"/v1/prompts/support/{action}", headers=headers, json=body)
    assert response.status_code == status, response.text
    if status == 200:  # the admin token's moves are recorded as the configured author
        assert repo.git("log", "-1", "--format=%an <%ae>") == "promptops UI <promptops-ui@localhost>"


def test_a_read_only_clone_refuses_label_moves(labelled, make_clone):
    response = make_clone().post("/v1/prompts/support/promote", json={"ref": "2", "label": "production"})
    assert (response.status_code, response.json()["error"]["type"]) == (403, "forbidden")
    assert "read-only clone" in response.json()["error"]["message"]
