"""Who may change what, over real HTTP: a real uvicorn gateway on 127.0.0.1 or 0.0.0.0, real git, real users file.

Every write needs a credential with its role on every bind address; reads are open on loopback only;
the sign-in link opens an HttpOnly, SameSite=Strict session; what a person does is recorded as them;
a cross-site request or a rebound Host name is refused.
"""

from __future__ import annotations

import json

import pytest
from rel_helpers import doc

from gateway.auth import COOKIE

UNREACHABLE = "127.0.0.1:9"  # no Triton: writes and reads of prompts do not need one


def save_body(prompts, system: str = "S3 ") -> dict[str, object]:
    return {"text": json.dumps(doc(system), indent=2), "base_commit": prompts["support@2"]}


WRITES = [  # (bind address, who, status): loopback is no free pass
    ("127.0.0.1", None, 401),
    ("127.0.0.1", "wrong", 401),
    ("127.0.0.1", "approver", 403),
    ("127.0.0.1", "editor", 200),
    ("0.0.0.0", None, 401),
    ("0.0.0.0", "wrong", 401),
    ("0.0.0.0", "approver", 403),
    ("0.0.0.0", "editor", 200),
]


@pytest.mark.parametrize("bind, who, status", WRITES)
def test_saves_need_an_editor_on_every_bind_address(gateway, users, prompts, repo, bind, who, status):
    client = gateway(UNREACHABLE, bind=bind, anonymous=True)
    token = "po_wrong" if who == "wrong" else users.add(f"Pat {who}", "pat@example.com", [who])[1] if who else None
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = client.put("/v1/prompts/support", json=save_body(prompts), headers=headers)
    assert response.status_code == status, response.text
    assert repo.git("log", "-1", "--format=%an") == ("Pat editor" if status == 200 else "Ada Author")


READS = [  # (bind address, read_access, anonymous read status)
    ("127.0.0.1", None, 200),
    ("0.0.0.0", None, 401),  # other machines can connect: reads need a credential by default
    ("127.0.0.1", "token", 401),
    ("0.0.0.0", "open", 200),
]


@pytest.mark.parametrize("bind, access, status", READS)
def test_reads_are_open_on_loopback_only_by_default(gateway, bind, access, status):
    anonymous = gateway(UNREACHABLE, bind=bind, anonymous=True, read_access=access)
    assert anonymous.get("/v1/prompts").status_code == status
    assert anonymous.post("/v1/prompts/support/render", json={}).status_code == status
    assert anonymous.get("/healthz").status_code == 200  # probes stay open
    assert gateway(UNREACHABLE, bind=bind, read_access=access).get("/v1/prompts").status_code == 200  # signed in


def test_token_reads_send_browsers_to_the_sign_in_page(gateway):
    response = gateway(UNREACHABLE, anonymous=True, read_access="token").get("/")
    assert response.status_code == 401 and "promptops serve" in response.text and 'action="/signin"' in response.text


@pytest.mark.parametrize("host", ["evil.example", "rebind.attacker.test:7070", "127.0.0.1.nip.io"])
def test_a_rebound_host_name_is_refused(gateway, host):
    client = gateway(UNREACHABLE, anonymous=True)
    response = client.get("/v1/prompts", headers={"host": host})
    assert (response.status_code, response.json()["error"]["type"]) == (400, "foreign_host")
    assert client.get("/v1/prompts").status_code == 200


def sign_in(client, token: str) -> str:
    """Follow the sign-in link; the session cookie's value (the client keeps it)."""
    response = client.get(f"/signin?token={token}", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/")
    return response.cookies[COOKIE]


def test_the_sign_in_link_sets_an_http_only_strict_cookie(gateway, users):
    client = gateway(UNREACHABLE, anonymous=True)
    token = users.add("Ed Editor", "ed@example.com", ["editor"])[1]
    response = client.get(f"/signin?token={token}", follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert response.status_code == 303 and response.headers["location"] == "/"  # the token leaves the address bar
    assert cookie.startswith(f"{COOKIE}=") and token not in cookie
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would never come back


def test_the_cookie_is_secure_behind_https(gateway, users):
    client = gateway(UNREACHABLE, anonymous=True)  # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a local proxy)
    token = users.add("Ed Editor", "ed@example.com", ["editor"])[1]
    response = client.get(f"/signin?token={token}", headers={"x-forwarded-proto": "https"}, follow_redirects=False)
    assert "Secure" in {part.strip() for part in response.headers["set-cookie"].split(";")}


def test_a_wrong_token_gets_no_session(gateway):
    client = gateway(UNREACHABLE, anonymous=True)
    response = client.get("/signin?token=po_guess", follow_redirects=False)
    assert response.status_code == 401 and "set-cookie" not in response.headers
    form = client.post("/signin", data={"token": "po_guess"}, headers={"origin": str(client.base_url)},
                       follow_redirects=False)
    assert form.status_code == 401 and "set-cookie" not in form.headers


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site"])  # same-site: another port of 127.0.0.1
def test_a_link_from_another_site_only_fills_the_form(gateway, users, fetch_site):
    client = gateway(UNREACHABLE, anonymous=True)
    token = users.add("Mallory", "mal@example.com", ["editor"])[1]
    response = client.get(f"/signin?token={token}", headers={"sec-fetch-site": fetch_site}, follow_redirects=False)
    assert response.status_code == 200 and "set-cookie" not in response.headers and "Confirm" in response.text
    signed = client.post("/signin", data={"token": token}, headers={"origin": "http://evil.example"})
    assert signed.status_code == 403 and "set-cookie" not in signed.headers  # nor can that site post the form


def test_a_save_through_the_session_is_authored_by_that_person(gateway, users, prompts, repo):
    client = gateway(UNREACHABLE, anonymous=True)
    sign_in(client, users.add("Ed Editor", "ed@example.com", ["editor"])[1])
    own = {"origin": str(client.base_url)}
    response = client.put("/v1/prompts/support", json=save_body(prompts), headers=own)
    assert response.status_code == 200, response.text
    assert repo.git("log", "-1", "--format=%an <%ae>") == "Ed Editor <ed@example.com>"


@pytest.mark.parametrize("headers", [{"origin": "http://evil.example"}, {"referer": "http://evil.example/x"}, {}],
                         ids=["origin", "referer", "neither"])
def test_a_cross_site_post_with_the_session_cookie_is_refused(gateway, users, prompts, repo, headers):
    client = gateway(UNREACHABLE, anonymous=True)
    sign_in(client, users.add("Ed Editor", "ed@example.com", ["editor"])[1])
    response = client.put("/v1/prompts/support", json=save_body(prompts), headers=headers)
    assert (response.status_code, response.json()["error"]["type"]) == (403, "cross_origin")
    assert repo.git("rev-parse", "HEAD") == prompts["support@2"]


def test_signing_out_ends_the_session(gateway, users, prompts):
    client = gateway(UNREACHABLE, anonymous=True)
    own = {"origin": str(client.base_url)}
    session = sign_in(client, users.add("Ed Editor", "ed@example.com", ["editor"])[1])
    out = client.post("/signout", headers=own, follow_redirects=False)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    client.cookies.set(COOKIE, session)  # a copy of the cookie kept elsewhere
    assert client.put("/v1/prompts/support", json=save_body(prompts), headers=own).status_code == 401


def test_removing_the_person_ends_their_session_at_once(gateway, users, prompts):
    client = gateway(UNREACHABLE, anonymous=True)
    sign_in(client, users.add("Ed Editor", "ed@example.com", ["editor"])[1])
    users.remove("Ed Editor")
    response = client.put("/v1/prompts/support", json=save_body(prompts), headers={"origin": str(client.base_url)})
    assert (response.status_code, response.json()["error"]["type"]) == (401, "unauthorized")


def test_approval_and_label_moves_record_the_person(gateway, users, prompts, repo):
    client = gateway(UNREACHABLE, anonymous=True)
    amy = {"authorization": "Bearer " + users.add("Amy Approver", "amy@example.com", ["approver"])[1]}
    dee = {"authorization": "Bearer " + users.add("Dee Deployer", "dee@example.com", ["deployer"])[1]}
    assert client.post("/v1/prompts/support/approve", json={"version": 2}, headers=amy).json()["created"]
    tag = repo.git("for-each-ref", "--format=%(contents)", "refs/tags/prompts/support/v2")
    assert "Approved-by: Amy Approver <amy@example.com>" in tag
    moved = client.post("/v1/prompts/support/promote", json={"ref": "2", "label": "production"}, headers=dee)
    assert moved.status_code == 200, moved.text
    assert repo.git("log", "-1", "--format=%an <%ae>") == "Dee Deployer <dee@example.com>"


def test_four_eyes_refuses_the_author_and_takes_another_approver(gateway, users, prompts):
    client = gateway(UNREACHABLE, anonymous=True, four_eyes=True)
    ed = {"authorization": "Bearer " + users.add("Ed Editor", "ed@example.com", ["editor", "approver"])[1]}
    amy = {"authorization": "Bearer " + users.add("Amy Approver", "amy@example.com", ["approver"])[1]}
    assert client.put("/v1/prompts/support", json=save_body(prompts), headers=ed).status_code == 200
    refused = client.post("/v1/prompts/support/approve", json={"version": 3}, headers=ed)
    assert refused.status_code == 403 and "four-eyes" in refused.json()["error"]["message"]
    assert client.post("/v1/prompts/support/approve", json={"version": 3}, headers=amy).status_code == 200


def test_store_info_hides_the_repository_path_from_anonymous_callers(gateway, repo):
    anonymous, owner = gateway(UNREACHABLE, anonymous=True), gateway(UNREACHABLE)
    assert str(repo.path) not in anonymous.get("/v1/store").text
    assert owner.get("/v1/store").json()["repo"] == str(repo.path)
