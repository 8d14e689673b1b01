"""The prompts resource: list, show, versions, diff, render, and its errors."""

from __future__ import annotations

import pytest


def test_list_shows_newest_approved_and_newest(client):
    rows = {p["name"]: p for p in client.get("/v1/prompts").json()["prompts"]}
    assert (rows["support"]["approved"]["version"], rows["support"]["newest"]["version"]) == (1, 2)
    assert (rows["fresh"]["approved"], rows["fresh"]["newest"]["version"]) == (None, 1)
    assert rows["support"]["labels"] == {}  # no labels.json


@pytest.mark.parametrize("query, version, system", [("", 1, "S1 "), ("?ref=2", 2, "S2 "), ("?ref=head", 2, "S2 ")])
def test_show_a_version(client, query, version, system):
    body = client.get(f"/v1/prompts/support{query}").json()
    assert (body["version"]["version"], body["document"]["system"]) == (version, system)
    assert body["rendered"] == system


def test_an_unchanged_version_answers_304_to_its_etag(client, prompts):
    first = client.get("/v1/prompts/support")
    version = first.json()["version"]
    assert first.headers["etag"] == f'"{version["commit"]}.{version["blob"]}"'
    again = client.get("/v1/prompts/support", headers={"if-none-match": first.headers["etag"]})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", first.headers["etag"])
    other = client.get("/v1/prompts/support?ref=2", headers={"if-none-match": first.headers["etag"]})
    assert other.status_code == 200 and other.headers["etag"] != first.headers["etag"]


def test_versions_with_approvals(client, prompts):
    versions = client.get("/v1/prompts/support/versions").json()["versions"]
    assert [(v["version"], v["approved"], v["commit"]) for v in versions] == [
        (1, True, prompts["support@1"]), (2, False, prompts["support@2"])]


def test_diff_between_two_versions(client):
    body = client.get("/v1/prompts/support/diff", params={"from": "1", "to": "2"}).json()
    assert body["prompts"][0]["status"] == "modified"
    assert "-S1" in body["text"] and "+S2" in body["text"]


def test_render_with_variables_and_history(client):
    body = client.post("/v1/prompts/support/render", json={
        "ref": "2", "variables": {"user": "Hi"}, "history": [{"role": "user", "content": "Yo"}]}).json()
    assert body["text"] == "S2 user: Yo\nHi"


@pytest.mark.parametrize("path, status, kind", [
    ("/v1/prompts/nope", 404, "prompt_not_found"),
    ("/v1/prompts/nope/labels", 404, "prompt_not_found"),
    ("/v1/prompts/support?ref=staging", 404, "version_not_found"),  # no such label, tag or branch
    ("/v1/prompts/support?ref=9", 404, "version_not_found"),
    ("/v1/prompts/fresh", 404, "not_approved"),
    ("/v1/prompts/Bad_Name", 400, "invalid_name"),
    ("/v1/prompts/..%2F..%2Fetc%2Fpasswd", 404, "http_error"),  # no route: '/' never reaches a name
    ("/v1/prompts/.git", 400, "invalid_name"),
    ("/v1/prompts/a%00b", 400, "invalid_name"),
    ("/v1/prompts/con", 400, "invalid_name"),
    ("/v1/prompts/-rf/versions", 400, "invalid_name"),
    ("/v1/prompts/support?ref=HEAD~1", 400, "ref_error"),
    ("/v1/prompts/support?ref=--output=x", 400, "ref_error"),
    ("/v1/prompts/support/diff?from=1&to=a..b", 400, "ref_error"),
])
def test_errors_have_a_status_a_type_and_a_fix(client, path, status, kind):
    response = client.get(path)
    assert (response.status_code, response.json()["error"]["type"]) == (status, kind)
    assert response.json()["error"]["fix"]
