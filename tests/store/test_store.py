"""PromptStore against real git repositories: versions, refs, approvals, status, saves, changes."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
from pathlib import Path

import pytest

from promptops.errors import (
    Conflict,
    NotApproved,
    PromptInvalid,
    PromptNotFound,
    RefError,
    Refused,
    StoreError,
    VersionNotFound,
)
from promptops.store import PromptStore
from tests.conftest import GitRepo, prompt_doc

A = "prompts/a.json"


def doc(user: str) -> dict[str, object]:
    return prompt_doc(user=user)


def numbers(store: PromptStore, name: str = "a") -> list[tuple[int, str]]:
    return [(v.number, v.message) for v in store.versions(name)]


@pytest.fixture
def three(repo: GitRepo) -> GitRepo:
    """a.json: v1 "one", v2 "two" (approved), v3 "three"; commits touching other files in between."""
    repo.commit({A: doc("one")}, "one")
    repo.commit({"README.md": "x"}, "readme")
    repo.commit({A: doc("two"), "prompts/b.json": doc("b")}, "two")
    repo.git("tag", "-a", "-m", "ok", "prompts/a/v2", "HEAD")
    repo.commit({A: doc("three")}, "three")
    repo.commit({"README.md": "y"}, "readme again")
    return repo


def test_numbering_skips_commits_that_do_not_change_the_prompt(three: GitRepo) -> None:
    store = PromptStore(three.path)
    assert numbers(store) == [(1, "one"), (2, "two"), (3, "three")]
    assert [v.approved for v in store.versions("a")] == [False, True, False]
    assert store.versions("b")[0].tag is None
    assert store.names() == ["a", "b"]
    v1 = store.versions("a")[0]
    assert (v1.author, v1.email, len(v1.commit), v1.blob) == ("Ada Author", "ada@example.com", 40,
                                                            three.git("rev-parse", "HEAD~4:prompts/a.json"))


def test_merge_counts_once_on_the_first_parent_line(repo: GitRepo) -> None:
    repo.commit({A: doc("one")}, "one")
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({A: doc("wip")}, "wip")
    repo.commit({A: doc("done")}, "done")
    repo.git("checkout", "-q", "main")
    repo.commit({"README.md": "x"}, "main moves")
    repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    assert numbers(PromptStore(repo.path)) == [(1, "one"), (2, "merge feature")]


def test_revert_delete_readd_and_mode_change(repo: GitRepo) -> None:
    repo.commit({A: doc("one")}, "one")
    repo.commit({A: doc("two")}, "two")
    repo.commit({A: doc("one")}, "revert")
    (repo.path / A).chmod(0o755)
    repo.commit({}, "chmod")
    repo.commit({A: None}, "delete")
    repo.commit({A: doc("one")}, "re-add")
    store = PromptStore(repo.path)
    assert numbers(store) == [(1, "one"), (2, "two"), (3, "revert"), (4, "re-add")]
    assert store.versions("a")[0].blob == store.versions("a")[2].blob


def test_rename_is_a_new_prompt(repo: GitRepo) -> None:
    repo.commit({A: doc("one")}, "one")
    repo.git("mv", A, "prompts/b.json")
    repo.commit({}, "rename")
    store = PromptStore(repo.path)
    assert numbers(store, "b") == [(1, "rename")]
    assert numbers(store) == [(1, "one")]
    assert store.names() == ["b"]
    with pytest.raises(PromptNotFound, match=r"^prompt 'a' was deleted in commit [0-9a-f]{7}\n  fix: restore prompts/a.json or ask for an "
                       r"explicit version: a@N$"):
        store.resolve("a@head")


def user_of(store: PromptStore, ref: str, **kwargs: object) -> str:
    return store.resolve(ref, **kwargs).prompt.fields["user"]  # type: ignore[arg-type]


@pytest.mark.parametrize(("ref", "default", "user"), [
    ("a", "approved", "two"),
    ("a", "head", "three"),
    ("a", "draft", "edited"),
    ("a@1", "approved", "one"),
    ("a@3", "approved", "three"),
    ("a@head", "approved", "three"),
    ("a@approved", "head", "two"),
    ("a@draft", "draft", "edited"),
    ("a@prompts/a/v2", "approved", "two"),
    ("a@main", "approved", "three"),
    ("a@old", "approved", "one"),
])
def test_ref_forms(three: GitRepo, ref: str, default: str, user: str) -> None:
    three.git("branch", "old", "HEAD~4")
    three.write({A: doc("edited")})
    assert user_of(PromptStore(three.path), ref, default=default) == user


def test_sha_refs(three: GitRepo) -> None:
    store = PromptStore(three.path)
    v2 = store.versions("a")[1]
    readme = three.git("rev-parse", "HEAD~3")  # the commit after v1 that touched only README.md
    assert store.resolve(f"a@{v2.commit[:7]}").version == v2
    assert store.resolve(f"a@{v2.commit}").approved is True
    assert store.resolve(f"a@{readme[:10]}").version.number == 1
    assert store.resolve("a@3").version.number == 3


def test_draft_resolution(three: GitRepo) -> None:
    three.write({A: doc("edited")})
    resolved = PromptStore(three.path).resolve("a@draft", serve_drafts=True)
    assert (resolved.draft, resolved.version, resolved.commit, resolved.approved) == (True, None, None, False)


def raises(store: PromptStore, ref: str, error: type[Exception], message: str, **kwargs: object) -> str | None:
    with pytest.raises(error) as caught:
        store.resolve(ref, **kwargs)  # type: ignore[arg-type]
    assert caught.value.message == message  # type: ignore[attr-defined]
    return caught.value.fix  # type: ignore[attr-defined]


@pytest.mark.parametrize(("ref", "error", "message", "fix"), [
    ("b", NotApproved, "prompt 'b' has no approved version", "promptops approve b"),
    ("a@9", VersionNotFound, "prompt 'a' has no version 9 (the newest is 3)", "list versions with `promptops log a`"),
    ("zz@1", PromptNotFound, "no prompt named 'zz' in prompts/", "list prompts with `promptops status`"),
    ("new", PromptNotFound, "prompt 'new' has no committed versions",
     "commit prompts/new.json first (`git add prompts/new.json && git commit`)"),
    ("a@draft", RefError, "'a@draft' is the working-tree file, which is not served",
     "use a@head or a@N, or enable serving drafts"),
    ("a@nosuch", VersionNotFound, "no label, tag, branch or commit 'nosuch' in this repository (in 'a@nosuch')",
     "list versions with `promptops log a`, labels with `promptops labels a`, or tags with `git tag --list`"),
    ("a@abcdef0", VersionNotFound, "no commit 'abcdef0' in this repository (in 'a@abcdef0')",
     "list versions with `promptops log a`, labels with `promptops labels a`, or tags with `git tag --list`"),
    ("b@first", VersionNotFound, "prompt 'b' did not exist yet at 'first' ({first})",
     "pick a version from `promptops log b`"),
])
def test_resolve_errors(three: GitRepo, ref: str, error: type[Exception], message: str, fix: str) -> None:
    three.git("tag", "first", "HEAD~4")
    three.write({"prompts/new.json": doc("n")})
    assert raises(PromptStore(three.path), ref, error, message.format(first=three.git("rev-parse", "first")[:7])) == fix


def test_ref_on_another_branch_matches_content(three: GitRepo) -> None:
    three.git("checkout", "-q", "-b", "side", "HEAD~4")
    three.commit({A: doc("side")}, "side")
    three.git("checkout", "-q", "main")
    store = PromptStore(three.path)
    three.git("checkout", "-q", "-b", "copy", "HEAD~4")
    assert store.resolve("a@copy").version.number == 1  # same content as v1
    raises(store, "a@side", VersionNotFound,
           "'side' is not on the history of HEAD and its prompts/a.json matches no version of 'a'")


def collide(repo: GitRepo) -> str:
    """Write two commit objects whose SHAs share 7 hex digits (a birthday search); return the prefix."""
    tree, parent = repo.git("rev-parse", "HEAD^{tree}"), repo.git("rev-parse", "HEAD")
    seen: dict[str, bytes] = {}
    for i in range(1_000_000):
        body = f"tree {tree}\nparent {parent}\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\n{i}\n".encode()
        sha = hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()
        if sha[:7] in seen:
            for data in (seen[sha[:7]], body):
                subprocess.run(["git", "hash-object", "-w", "-t", "commit", "--stdin"], cwd=repo.path, input=data,
                               check=True, capture_output=True)
            return sha[:7]
        seen[sha[:7]] = body
    raise AssertionError("no collision")


def test_ambiguous_short_sha(three: GitRepo) -> None:
    prefix = collide(three)
    fix = raises(PromptStore(three.path), f"a@{prefix}", RefError,
                 f"short SHA '{prefix}' in 'a@{prefix}' is ambiguous")
    assert fix == "use more hex digits of the commit SHA"


def test_approve_writes_an_annotated_tag(three: GitRepo) -> None:
    store = PromptStore(three.path)
    version, created = store.approve("a", message="reviewed by Bo")
    assert (version.number, version.approved, version.tag, created) == (3, True, "prompts/a/v3", True)
    body = three.git("tag", "-l", "--format=%(contents)", "prompts/a/v3")
    assert body.startswith("Approve prompt a v3\n\nreviewed by Bo\n\nApproved-by: Ada Author <ada@example.com>\n")
    assert re.search(r"^Approved-at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", body, re.M)
    assert f"Commit: {version.commit}\nBlob: {version.blob}" in body
    assert store.resolve("a").version.number == 3
    assert store.approve("a", 3) == (version, False)


def test_approve_refuses_a_dirty_draft_but_takes_an_explicit_version(three: GitRepo) -> None:
    three.write({A: doc("edited")})
    store = PromptStore(three.path)
    with pytest.raises(Refused) as caught:
        store.approve("a")
    assert (caught.value.message, caught.value.fix) == (
        "prompt a has uncommitted changes", "commit prompts/a.json first, or approve a committed version with --version N")
    assert store.approve("a", 1)[1] is True
    with pytest.raises(VersionNotFound, match=r"^prompt 'a' has no version 7 \(the newest is 3\)\n"):
        store.approve("a", 7)


def test_approve_sign_without_a_key(three: GitRepo) -> None:
    three.git("config", "gpg.program", "false")
    with pytest.raises(StoreError) as caught:
        PromptStore(three.path).approve("a", sign=True)
    assert caught.value.message.startswith("signing the approval tag failed: ")
    assert "git config user.signingkey" in caught.value.fix


def test_status_with_a_dirty_tree(three: GitRepo) -> None:
    three.write({A: doc("edited"), "prompts/c.json": doc("c")})
    rows = {r.name: r for r in PromptStore(three.path).status()}
    assert sorted(rows) == ["a", "b", "c"]
    assert (rows["a"].newest.number, rows["a"].approved.number, rows["a"].dirty, rows["a"].untracked) == (3, 2, True, False)
    assert (rows["b"].dirty, rows["b"].approved) == (False, None)
    assert (rows["c"].newest, rows["c"].untracked) == (None, True)


def test_save_commits_only_that_path(three: GitRepo) -> None:
    three.write({"README.md": "staged"})
    three.git("add", "README.md")
    store = PromptStore(three.path)
    head = store.versions("a")[-1].commit
    saved = store.save("a", json.dumps(doc("saved")), base_commit=head, author_name="Bo", author_email="bo@x.org",
                       message="via ui")
    assert (saved.number, saved.author, saved.message) == (4, "Bo", "via ui")
    assert three.git("show", "--name-only", "--format=", "HEAD") == A
    assert three.git("status", "--porcelain") == "M  README.md"
    assert json.loads((three.path / A).read_text())["user"] == "saved"


def test_save_conflict_and_new_prompt(three: GitRepo) -> None:
    store = PromptStore(three.path)
    assert store.save("n", json.dumps(doc("n")), base_commit=None, author_name="Bo", author_email="b@x",
                      message="new").number == 1
    with pytest.raises(Conflict) as caught:
        store.save("a", json.dumps(doc("x")), base_commit=store.versions("a")[0].commit, author_name="Bo",
                   author_email="b@x", message="stale")
    assert caught.value.message == f"prompt 'a' changed since you started editing: the newest is version 3 " \
                                   f"({caught.value.current_commit[:7]})"
    assert caught.value.current_version == 3
    with pytest.raises(PromptInvalid):
        store.save("a", "{", base_commit=None, author_name="Bo", author_email="b@x", message="bad")


def test_two_concurrent_saves_one_wins(three: GitRepo) -> None:
    base = PromptStore(three.path).versions("a")[-1].commit
    outcomes: list[str] = []

    def save(user: str) -> None:
        try:
            PromptStore(three.path).save("a", json.dumps(doc(user)), base_commit=base, author_name="Bo",
                                         author_email="b@x", message=user)
            outcomes.append("saved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(u,)) for u in ("x", "y")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(outcomes) == ["conflict", "saved"]
    assert len(PromptStore(three.path).versions("a")) == 4


def test_shallow_clone_is_refused(three: GitRepo, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{three.path}", str(clone)], check=True)
    with pytest.raises(StoreError) as caught:
        PromptStore(clone).versions("a")
    assert caught.value.message == f"{clone} is a shallow clone: prompt version numbers need the full history"
    assert caught.value.fix == "fetch full history (actions/checkout with fetch-depth: 0, or `git fetch --unshallow`)"


def test_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        PromptStore(tmp_path)
    assert (caught.value.message, caught.value.fix) == (f"not a git repository: {tmp_path}",
                                                        "run `git init` or pass --repo")


def test_changes_between_commits(three: GitRepo) -> None:
    base = three.git("rev-parse", "HEAD")
    three.commit({A: doc("four"), "prompts/b.json": None, "prompts/c.json": "{not json", "prompts/x/d.json": "{}"})
    changes = PromptStore(three.path).changes(base, "HEAD")
    assert [(c.name, c.status) for c in changes] == [("a", "modified"), ("b", "removed"), ("c", "added")]
    assert (changes[0].old.fields["user"], changes[0].new.fields["user"]) == ("three", "four")
    assert (changes[2].new, changes[2].new_bytes) == (None, b"{not json")
    with pytest.raises(RefError, match=r"^invalid ref 'HEAD~1': character '~' is not allowed\n  fix: pass a commit SHA, a tag or a branch"):
        PromptStore(three.path).changes("HEAD~1", "HEAD")


def test_warm_store_sees_new_commits_and_approvals(three: GitRepo) -> None:
    store, other = PromptStore(three.path), PromptStore(three.path)
    assert store.resolve("a").version.number == 2
    other.approve("a", 3)
    assert store.resolve("a").version.number == 3
    three.commit({A: doc("four")}, "four")
    assert store.resolve("a@head").version.number == 4
    assert len(store.versions("a")) == 4


@pytest.mark.parametrize("stage", [False, True])
def test_save_refuses_to_overwrite_an_uncommitted_draft(three: GitRepo, stage: bool) -> None:
    draft = b'{"config": {}, "user": "my unsaved words", "template": "{user}"}\n'
    three.write({A: draft})
    if stage:
        three.git("add", A)
    store = PromptStore(three.path)
    with pytest.raises(Conflict, match=r"^prompts/a.json has (staged|uncommitted) changes.*; saving would overwrite them"):
        store.save("a", json.dumps(doc("ui")), base_commit=store.versions("a")[-1].commit, author_name="Bo",
                   author_email="b@x", message="ui")
    assert (three.path / A).read_bytes() == draft
    assert len(store.versions("a")) == 3
