"""Approvals and their revocation, both annotated git tags on the version's commit.

``prompts/NAME/vN`` approves version N; ``prompts/NAME/vN-revoked`` revokes that
approval without rewriting history (the approval tag stays, the record of who
revoked it and why sits next to it). Tags are repository-wide, so a revoked
version is unapproved on every branch and in every clone that fetches tags.

Tags are read with one `git for-each-ref` and re-read only when the tag directory
of that prompt or `packed-refs` changes (a stat per lookup). A reftable repository has
neither (its refs live in binary tables), so there the key is the table list, which
changes on every ref update.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from promptops.errors import Forbidden, PromptOpsError, StoreError
from promptops.store.git import Git, last_line, reftable_key, uses_reftable
from promptops.store.history import stat_key
from promptops.store.model import Version

_APPROVAL = re.compile(r"v([1-9][0-9]*)")
_REVOCATION = re.compile(r"v([1-9][0-9]*)-revoked")


def approval_tag(name: str, number: int) -> str:
    return f"prompts/{name}/v{number}"


def revocation_tag(name: str, number: int) -> str:
    return f"prompts/{name}/v{number}-revoked"


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class Marks:
    """One prompt's approval tags and revocation tags: version number -> the commit the tag points at."""

    approved: dict[int, str]
    revoked: dict[int, str]
    objects: dict[int, str] = field(default_factory=dict)  # version number -> the approval's tag object


_EMPTY = Marks({}, {})
_GOOD = re.compile(r'Good "git" signature for (\S+) with')


@dataclass(frozen=True)
class Signature:
    """Whether an approval tag's signature verifies against the allowed-signers file ("unverified": there is no
    such file, so nothing can be verified, signed or not)."""

    state: Literal["good", "unsigned", "unverified", "bad"]
    signer: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.state == "good":
            return f"signed by {self.signer}"
        if self.state == "unverified":  # nothing to check it against: say so, not "bad"
            return f"not verified ({self.detail})"
        return "unsigned" if self.state == "unsigned" else f"bad signature ({self.detail})"


class Approvals:
    """Reads and writes the approval and revocation tags of every prompt."""

    def __init__(self, git: Git, common: str) -> None:
        self.git = git
        self.common = common
        self._marks: dict[str, Marks] | None = None
        self._snapshot: dict[str, Any] = {}
        self._packed: Any = None  # _shared() when the tags were last read
        self._signatures: dict[tuple[str, str], Signature] = {}
        self.reftable = uses_reftable(common)

    def key(self, name: str) -> tuple[Any, ...]:
        """Changes whenever a tag of `name` is created, moved or deleted."""
        # A reftable repository has no per-prompt folder to stat: any ref update makes every key stale.
        return (self._shared(),
                None if self.reftable else stat_key(os.path.join(self.common, "refs", "tags", "prompts", name)))

    def _shared(self) -> Any:
        """The part of every prompt's key that any tag change may touch: packed-refs, or the reftable stack."""
        return reftable_key(self.common) if self.reftable else stat_key(os.path.join(self.common, "packed-refs"))

    def of(self, name: str) -> Marks:
        """The current tags of `name` (re-read when stale)."""
        if self._marks is None or self._snapshot.get(name, (self._packed, None)) != self.key(name):
            self._load()
        return self._marks.get(name, _EMPTY) if self._marks is not None else _EMPTY

    def forget(self) -> None:
        self._marks = None

    def _load(self) -> None:
        # Checked on every re-read (not per lookup): `git refs migrate` converts a repository in place,
        # and the tag folders and packed-refs it removes make the old key stale.
        self.reftable = uses_reftable(self.common)
        root = os.path.join(self.common, "refs", "tags", "prompts")
        # Snapshot before reading, so a tag created meanwhile makes the snapshot stale, not the data.
        snapshot: dict[str, Any] = {}
        with contextlib.suppress(OSError):
            for entry in os.scandir(root):
                snapshot[entry.name] = self.key(entry.name)
        packed = self._shared()  # in a reftable repository the folders above do not exist: this is the key
        out = self.git.run("for-each-ref", "--format=%(refname)%00%(objecttype)%00%(*objectname)%00%(objectname)",
                           "refs/tags/prompts/").decode(errors="replace")
        approved: dict[str, dict[int, str]] = {}
        revoked: dict[str, dict[int, str]] = {}
        objects: dict[str, dict[int, str]] = {}
        for row in out.splitlines():
            ref, kind, target, tag_object = row.split("\0")
            parts = ref.split("/")
            if kind != "tag" or len(parts) != 5:  # lightweight tags are not approvals: they carry no record
                continue
            if match := _APPROVAL.fullmatch(parts[4]):
                approved.setdefault(parts[3], {})[int(match.group(1))] = target
                objects.setdefault(parts[3], {})[int(match.group(1))] = tag_object
            elif match := _REVOCATION.fullmatch(parts[4]):
                revoked.setdefault(parts[3], {})[int(match.group(1))] = target
        marks = {name: Marks(approved.get(name, {}), revoked.get(name, {}), objects.get(name, {}))
                 for name in {*approved, *revoked}}
        for name in marks:
            snapshot.setdefault(name, (packed, None))
        self._snapshot, self._packed, self._marks = snapshot, packed, marks

    def signature(self, tag_object: str, signers: bytes | None) -> Signature:
        """Verify an approval tag against an allowed-signers file's bytes (git's SSH signing format)."""
        if signers is None:
            return Signature("unverified", detail="no allowed-signers file in the repository")
        digest = hashlib.sha1(signers).hexdigest()[:16]
        key = (tag_object, digest)
        found = self._signatures.get(key)
        if found is None:
            # git needs the allowed signers as a file: one per content, kept under .git/promptops/.
            path = Path(self.common, "promptops", f"allowed-signers-{digest}")
            if not path.exists():
                from promptops.files import atomic_write

                atomic_write(path, signers)
            result = self.git.attempt("-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={path}",
                                      "verify-tag", "--raw", tag_object)
            text = result.stderr.decode(errors="replace")
            good = _GOOD.search(text)
            if result.returncode == 0 and good:
                found = Signature("good", good.group(1))
            elif "no signature found" in text:
                found = Signature("unsigned")
            else:
                found = Signature("bad", detail=last_line(text) or f"git verify-tag exited {result.returncode}")
            self._signatures[key] = found
        return found

    # -- writes -------------------------------------------------------------------------------------

    def approve(self, version: Version, message: str | None, sign: bool,
                approver: tuple[str, str] | None = None, four_eyes: bool = False) -> None:
        """Create the approval tag of `version`, recording who approved it and when.

        `approver` is the person (the gateway's signed-in user); default: git's identity. With
        `four_eyes`, the version's author may not approve it.
        """
        tag = approval_tag(version.name, version.number)
        if self.git.rev_parse(f"refs/tags/{tag}"):
            raise StoreError(f"tag {tag} exists but does not point at version {version.number} ({version.short})",
                             fix=f"the history was rewritten; delete the stale tag with `git tag -d {tag}`")
        who, email = approver or self.git.identity("the approval")
        if four_eyes and email.lower() == version.email.lower():
            raise Forbidden(f"{who} <{email}> wrote {version.name} v{version.number} and may not approve it "
                            "(four-eyes policy)", fix="ask another approver")
        body = f"Approve prompt {version.name} v{version.number}\n\n"
        if message and message.strip():
            body += message.strip() + "\n\n"
        body += (f"Approved-by: {who} <{email}>\nApproved-at: {now_iso()}\nPrompt: {version.name}\n"
                 f"Version: {version.number}\nCommit: {version.commit}\nBlob: {version.blob}\n")
        self._tag(tag, version.commit, body, sign)

    def revoke(self, version: Version, reason: str, actor: tuple[str, str] | None = None) -> None:
        """Create the revocation tag of `version`: from then on it is not approved anywhere."""
        if not reason.strip():
            raise PromptOpsError("a revocation needs a reason", fix="say why with -m/--message")
        who, email = actor or self.git.identity("the revocation")
        body = (f"Revoke approval of prompt {version.name} v{version.number}\n\n{reason.strip()}\n\n"
                f"Revoked-by: {who} <{email}>\nRevoked-at: {now_iso()}\nPrompt: {version.name}\n"
                f"Version: {version.number}\nCommit: {version.commit}\n")
        self._tag(revocation_tag(version.name, version.number), version.commit, body, False)

    def _tag(self, tag: str, commit: str, body: str, sign: bool) -> None:
        # The message goes through a file: no quoting, and nothing in it can be read as an option.
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as handle:
            handle.write(body)
        try:
            result = self.git.attempt("tag", "-s" if sign else "-a", "-F", handle.name, "--end-of-options", tag,
                                      commit)
        finally:
            os.unlink(handle.name)
        if result.returncode != 0:
            detail = last_line(result.stderr)
            if sign:
                raise StoreError(f"signing the approval tag failed: {detail}",
                                 fix="configure a key (`git config user.signingkey KEY`, and `gpg.format ssh` "
                                     "for SSH keys) or approve without --sign")
            raise StoreError(f"git tag failed: {detail}", fix="check the repository with `git status`")
        self.forget()
