"""Body size limit, credentials and roles on writes, approvals, saves that lost a race, and the browser
defences: Host allow-list, Origin check, security headers, no CORS, no paths or URL credentials shown.

The gateway's own bind address is a setting here (TestClient); tests/reliability/test_auth.py binds for real.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.auth import COOKIE
from gateway.settings import get_settings
from promptops.errors import StoreError

BASE = "http://127.0.0.1:7070"


def doc_text(system: str) -> str:
    """A valid prompt file's text."""
    return json.dumps({"config": {"max_tokens": 64}, "system": system, "template": "{system}{user}"}, indent=2)


def test_body_over_the_limit_is_413_json(make_client):
    client = make_client(max_body_bytes=200)
    response = client.post("/v1/chat", json={"prompt": "support", "message": "x" * 500})
    assert (response.status_code, response.json()["error"]["type"]) == (413, "payload_too_large")


def test_chunked_body_over_the_limit_is_413(make_client):
    client = make_client(max_body_bytes=200)
    chunks = iter([b'{"prompt": "support", "message": "', b"x" * 500, b'"}'])
    response = client.post("/v1/chat", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413


WRITES = [  # (settings, who calls, status): loopback gives no free pass
    ({}, None, 401),
    ({}, "Bearer wrong", 401),
    ({}, "Basic b2xpdmU6eA==", 401),
    ({}, "approver", 403),  # a valid token without the editor role
    ({}, "editor", 200),
    ({"admin_token": "s3cret"}, None, 401),
    ({"admin_token": "s3cret"}, "Bearer s3cret", 200),  # the admin token holds every role
    ({"host": "0.0.0.0"}, None, 401),
    ({"host": "0.0.0.0"}, "Bearer wrong", 401),
    ({"host": "0.0.0.0"}, "approver", 403),
    ({"host": "0.0.0.0"}, "editor", 200),
    ({"host": "0.0.0.0", "admin_token": "t"}, "Bearer t", 200),
]


@pytest.mark.parametrize("change, who, status", WRITES)
def test_writes_need_a_credential_with_the_role(make_client, person, prompts, change, who, status):
    client = make_client(**change)
    headers = person("Ed Editor", "editor") if who == "editor" else person("Amy Approver", "approver") \
        if who == "approver" else {"authorization": who} if who else {}
    response = client.put("/v1/prompts/support", headers=headers, json={
        "text": doc_text("S3 "), "base_commit": prompts["support@2"]})
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer" and "promptops serve" in response.json()["error"]["fix"]


def test_save_then_approve_then_served_by_bare_name(client, owner, prompts):
    saved = client.put("/v1/prompts/support", headers=owner, json={
        "text": doc_text("S3 "), "base_commit": prompts["support@2"], "message": "shorter"}).json()["version"]
    assert (saved["version"], saved["approved"]) == (3, False)
    approved = client.post("/v1/prompts/support/approve", headers=owner, json={"version": 3}).json()
    assert approved["created"] and approved["version"]["tag"] == "prompts/support/v3"
    assert client.post("/v1/chat", json={"prompt": "support", "message": "hi"}).json()["text"] == "S3 hi"


def test_save_on_a_replaced_version_is_409_with_the_current_one(client, owner, prompts):
    response = client.put("/v1/prompts/support", headers=owner,
                          json={"text": doc_text("S3 "), "base_commit": prompts["support@1"]})
    error = response.json()["error"]
    assert (response.status_code, error["current_version"], error["current_commit"]) == (
        409, 2, prompts["support@2"])


def test_invalid_save_writes_nothing(client, owner, repo, prompts):
    response = client.put("/v1/prompts/support", headers=owner, json={"text": json.dumps({"template": "{x"}),
                                                                      "base_commit": prompts["support@2"]})
    assert response.status_code == 422
    assert repo.git("rev-parse", "HEAD") == prompts["fresh@1"]


@pytest.mark.parametrize("signed_in", [False, True])
def test_a_read_only_clone_refuses_writes(client, owner, prompts, signed_in):
    settings = client.app.state.settings.with_(store_url="https://example.invalid/prompts.git")
    client.app.dependency_overrides[get_settings] = lambda: settings
    response = client.post("/v1/prompts/support/approve", json={}, headers=owner if signed_in else {})
    assert (response.status_code, response.json()["error"]["type"]) == (403, "forbidden")
    assert "read-only clone" in response.json()["error"]["message"]


def test_approve_can_be_switched_off(make_client, owner):
    response = make_client(allow_approve=False).post("/v1/prompts/support/approve", json={}, headers=owner)
    assert (response.status_code, response.json()["error"]["type"]) == (403, "forbidden")


ROLES_NEEDED = [  # (method, path, body, the role that may)
    ("PUT", "/v1/prompts/fresh", {"text": doc_text("F2 "), "base_commit": "fresh@1"}, "editor"),
    ("POST", "/v1/prompts/fresh/approve", {"version": 1}, "approver"),
    ("POST", "/v1/prompts/support/revoke", {"version": 1, "reason": "leaks"}, "approver"),
    ("POST", "/v1/prompts/support/promote", {"ref": "1", "label": "staging"}, "deployer"),
    ("POST", "/v1/prompts/support/rollback", {"label": "production"}, "deployer"),
    ("POST", "/v1/store/refresh", None, "deployer"),
]


@pytest.mark.parametrize("method, path, body, role", ROLES_NEEDED, ids=[r[1].rsplit("/", 1)[-1] for r in ROLES_NEEDED])
def test_each_write_needs_its_role(client, person, labelled, repo, method, path, body, role):
    if body and "base_commit" in body:
        body = {**body, "base_commit": labelled[body["base_commit"]]}
    client.post("/v1/prompts/support/promote", json={"ref": "2", "label": "production"},
                headers=person("Dee Deployer", "deployer"))  # something to roll back
    before = (repo.git("rev-parse", "HEAD"), repo.git("tag", "-l"))
    assert client.request(method, path, json=body).status_code == 401
    for other in {"editor", "approver", "deployer"} - {role}:
        response = client.request(method, path, json=body, headers=person(f"Not {other}", other))
        assert response.status_code == 403 and f"needs the {role} role" in response.json()["error"]["message"]
    assert (repo.git("rev-parse", "HEAD"), repo.git("tag", "-l")) == before
    response = client.request(method, path, json=body, headers=person(f"A {role}", role))
    assert response.status_code == 200, response.text


def test_revoke_records_who_and_why_and_stops_serving(client, person, prompts, repo):
    amy = person("Amy Approver", "approver")
    response = client.post("/v1/prompts/support/revoke", headers=amy, json={"version": 1, "reason": "leaks tickets"})
    assert (response.status_code, response.json()["version"]["revoked"]) == (200, True)
    tag = repo.git("for-each-ref", "--format=%(contents)", "refs/tags/prompts/support/v1-revoked*")
    assert "leaks tickets" in tag and "Revoked-by: Amy Approver <amy@example.com>" in tag
    assert client.post("/v1/chat", json={"prompt": "support", "message": "hi"}).status_code == 404
    again = client.post("/v1/prompts/support/revoke", headers=amy, json={"version": 1, "reason": "again"})
    assert (again.status_code, again.json()["error"]["type"]) == (409, "refused")


# -- browser defences -------------------------------------------------------------------------------

HOSTS = [  # (allowed_hosts setting, Host header, answered)
    (None, "127.0.0.1:7070", True),
    (None, "localhost:7070", True),
    (None, "LOCALHOST", True),
    (None, "[::1]:7070", True),
    (None, "evil.example:7070", False),  # DNS rebinding: evil.example now resolves to 127.0.0.1
    (None, "127.0.0.1.evil.example", False),
    (None, "localhost.evil.example:7070", False),
    ("prompts.example.com", "prompts.example.com", True),
    ("prompts.example.com", "localhost:7070", False),
    ("*", "anything.example", True),
]


@pytest.mark.parametrize("allowed, host, answered", HOSTS)
def test_a_foreign_host_is_refused(make_client, allowed, host, answered):
    client = make_client(allowed_hosts=allowed)
    response = client.get("/v1/prompts", headers={"host": host})
    if answered:
        assert response.status_code == 200, response.text
    else:
        assert (response.status_code, response.json()["error"]["type"]) == (400, "foreign_host")


def signed_in(client, owner) -> str:
    """Sign in with the owner's token; the session cookie's value."""
    token = owner["authorization"].split()[1]
    response = client.get(f"/signin?token={token}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    return response.cookies[COOKIE]


ORIGINS = [  # (request headers besides the session cookie, status)
    ({"origin": "http://127.0.0.1:7070"}, 200),  # the gateway's own page
    ({"referer": "http://127.0.0.1:7070/?prompt=support"}, 200),
    ({"origin": "http://evil.example"}, 403),  # a form or fetch on another site
    ({"origin": "http://127.0.0.1:8888"}, 403),  # another local server is another site
    ({"origin": "null"}, 403),  # a sandboxed frame or a file: page
    ({"referer": "http://evil.example/page"}, 403),
    ({}, 403),  # a cookie and no word on where it comes from
]


@pytest.mark.parametrize("headers, status", ORIGINS)
def test_a_cross_site_write_with_the_session_cookie_is_refused(client, owner, labelled, repo, headers, status):
    client.cookies.set(COOKIE, signed_in(client, owner))
    response = client.post("/v1/prompts/support/promote", headers=headers, json={"ref": "1", "label": "staging"})
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["error"]["type"] == "cross_origin"
        assert repo.git("rev-parse", "HEAD") == labelled["labels"]


BEARER_ORIGINS = [  # (trusted_origins, Origin, status): an API client sends no Origin; a browser cannot send the header
    ("", None, 200),
    ("", "http://evil.example", 403),
    ("https://admin.example.com", "https://admin.example.com", 200),
]


@pytest.mark.parametrize("trusted, origin, status", BEARER_ORIGINS)
def test_bearer_clients_without_origin_pass(make_client, owner, labelled, trusted, origin, status):
    client = make_client(trusted_origins=trusted)
    headers = {**owner, **({"origin": origin} if origin else {})}
    assert client.post("/v1/prompts/support/promote", headers=headers, json={"ref": "1", "label": "staging"}
                       ).status_code == status


def test_chat_from_another_site_is_refused_too(client):
    response = client.post("/v1/chat", headers={"origin": "http://evil.example"}, json={"prompt": "support",
                                                                                        "message": "hi"})
    assert (response.status_code, response.json()["error"]["type"]) == (403, "cross_origin")


@pytest.mark.parametrize("path", ["/v1/prompts", "/healthz", "/nope", "/docs"])
def test_security_headers_on_every_answer(client, path):
    headers = client.get(path).headers
    assert (headers["x-content-type-options"], headers["referrer-policy"], headers["x-frame-options"]) == (
        "nosniff", "same-origin", "DENY")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_no_cors_unless_configured(make_client):
    """Not even Gradio's own (it would answer localhost origins with credentials): the UI is mounted here."""
    with TestClient(create_app(make_client().app.state.settings), base_url=BASE) as client:
        for path in ("/v1/prompts", "/config", "/gradio_api/info"):
            response = client.get(path, headers={"origin": "http://localhost:3000"})
            assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    allowed = make_client(cors_origins="https://app.example.com").get(
        "/v1/prompts", headers={"origin": "https://app.example.com"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"


def test_a_cors_preflight_needs_no_credential_when_reads_do(make_client, owner):
    client = make_client(read_access="token", cors_origins="https://app.example.com")
    preflight = client.options("/v1/prompts", headers={"origin": "https://app.example.com",
                                                       "access-control-request-method": "GET"})
    assert preflight.status_code == 200
    assert client.get("/v1/prompts", headers={"origin": "https://app.example.com"}).status_code == 401
    assert client.get("/v1/prompts", headers={"origin": "https://app.example.com", **owner}).status_code == 200


def test_store_info_shows_paths_only_to_signed_in_callers(client, owner, repo):
    assert client.get("/v1/store").json()["repo"] is None
    assert client.get("/v1/store", headers=owner).json()["repo"] == str(repo.path)


@pytest.mark.parametrize("signed_in", [False, True])
def test_store_info_never_shows_url_credentials(client, owner, signed_in):
    settings = client.app.state.settings.with_(store_url="https://robot:ghp_s3cret@github.example/org/prompts.git")
    client.app.dependency_overrides[get_settings] = lambda: settings
    body = client.get("/v1/store", headers=owner if signed_in else {}).text
    assert "ghp_s3cret" not in body and "robot" not in body and "https://github.example/org/prompts.git" in body


def test_error_bodies_show_no_absolute_paths(repo, make_client, prompts):
    client = make_client()

    def broken() -> None:
        raise StoreError(f"git failed in {repo.path}/.git fetching https://u:tok@host.example/x.git",
                         fix=f"look at {repo.path}")

    client.app.add_api_route("/broken", broken)
    error = client.get("/broken").json()["error"]
    assert str(repo.path) not in json.dumps(error) and "tok" not in json.dumps(error)
    assert error["message"] == "git failed in <repo>/.git fetching https://host.example/x.git"



def test_only_gateway_auth_reads_credentials():
    # One parser of Bearer tokens and the session cookie: no other gateway file names the cookie or reads
    # the Authorization or Cookie header (limits, routes and the UI take auth's validated user).
    from pathlib import Path

    import gateway

    readers = {path.name for path in Path(gateway.__file__).parent.rglob("*.py")
               if any(needle in path.read_text().lower() for needle in
                      (COOKIE, 'get("authorization")', 'get("cookie")', 'b"authorization"', 'b"cookie"', '== "bearer"'))}
    assert readers == {"auth.py"}
