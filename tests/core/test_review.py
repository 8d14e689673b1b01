import asyncio
import json
from pathlib import Path

import pytest

from promptops.review import MARKER, build_review, to_json, to_markdown, to_text
from promptops.store import PromptStore
from tests.conftest import prompt_doc

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.fixture
def pr(repo):
    """main: keep, drop, tweak; the PR branch modifies tweak, adds fresh, removes drop, breaks keep."""
    repo.commit({"prompts/keep.json": prompt_doc(), "prompts/drop.json": prompt_doc(),
                 "prompts/tweak.json": prompt_doc(system="Be brief.", config={"temperature": "0.2"})}, "base")
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({"prompts/tweak.json": prompt_doc(system="Be very brief.", config={"temperature": 0.7}),
                 "prompts/fresh.json": prompt_doc(), "prompts/drop.json": None,
                 "prompts/keep.json": '{"config": {}, "template": "{missing}"}'}, "feature")
    return PromptStore(repo.path)


def review(store):
    return asyncio.run(build_review(store, "main", "feature"))


def test_review_lists_every_change_and_fails_on_invalid_head(pr):
    report = review(pr)
    assert {p.diff.name: p.diff.status for p in report.prompts} == {
        "drop": "removed", "fresh": "added", "keep": "modified", "tweak": "modified"}
    assert report.failed and report.invalid == 1
    assert report.summary() == "4 prompts changed · 1 invalid"


def test_markdown_has_marker_config_table_and_error(pr):
    text = to_markdown(review(pr))
    assert text.startswith(MARKER + "\n## promptops review: `main` → `feature`")
    assert "| `temperature` | 0.2 | 0.7 |" in text
    assert "> :x: **invalid** `prompts/keep.json` $.template: unknown placeholder {missing}" in text


def test_markdown_is_truncated_to_the_limit(pr):
    text = to_markdown(review(pr), limit=400)
    assert len(text) <= 400 and text.rstrip().endswith("the full report is in the job artifacts.")


def test_json_and_text_formats(pr):
    data = json.loads(to_json(review(pr)))
    assert (data["failed"], data["invalid"], [p["name"] for p in data["prompts"]]) == (
        True, 1, ["drop", "fresh", "keep", "tweak"])
    assert to_text(review(pr)).startswith("4 prompts changed · 1 invalid\n")


@pytest.fixture
def released(repo):
    """main: support v1, v2 (approved), v3 (not approved); production -> v1. Then on branch feature."""
    for n, system in ((1, "Be brief."), (2, "Be kind.")):
        repo.commit({"prompts/support.json": prompt_doc(system=system)}, f"v{n}")
        repo.git("tag", "-a", "-m", "ok", f"prompts/support/v{n}", "HEAD")
    repo.commit({"prompts/support.json": prompt_doc(system="Be terse.")}, "v3")
    repo.commit({"labels.json": {"protected": ["production"], "labels": {"support": {"production": 1}}}}, "labels")
    repo.git("checkout", "-q", "-b", "feature")
    return repo


def moved(repo, labels):
    repo.commit({"labels.json": {"protected": ["production"], "labels": labels}}, "move labels")
    return review(PromptStore(repo.path))


def test_label_moves_are_reported_with_a_rendered_diff(released):
    report = moved(released, {"support": {"production": 2, "staging": 3}})
    assert [str(m.move) for m in report.labels] == ["support: production v1 -> v2", "support: staging (unset) -> v3"]
    assert not report.failed and report.summary() == "0 prompts changed · 2 label moves"
    assert to_text(report) == (GOLDEN / "review_labels.txt").read_text(encoding="utf-8")
    data = json.loads(to_json(report))
    assert [(m["move"], m["blocked"], m["diff"]["rendered"].splitlines()[-1]) for m in data["labels"]] == [
        ("support: production v1 -> v2", False, "+Be kind."), ("support: staging (unset) -> v3", False, "+Be terse.")]


def test_markdown_lists_label_moves_keeps_the_marker_and_truncates(released):
    report = moved(released, {"support": {"production": 2}})
    text = to_markdown(report)
    assert text.startswith(MARKER + "\n") and "**0 prompts changed · 1 label move**" in text
    assert "#### `support: production v1 -> v2` (protected)\n" in text and "-Be brief.\n+Be kind.\n" in text
    short = to_markdown(report, limit=300)
    assert len(short) <= 300 and short.startswith(MARKER) and short.rstrip().endswith("job artifacts.")


@pytest.mark.parametrize(("target", "why", "fix"), [
    (3, "support v3 is not approved", "approve v3 first: `promptops approve support --version 3`"),
    (2, "the approval of support v2 was revoked", "point production at an approved version; a revocation is final"),
])
def test_protected_label_moved_to_an_unapproved_version_fails(released, target, why, fix):
    released.git("tag", "-a", "-m", "leaks", "prompts/support/v2-revoked", "prompts/support/v2^{commit}")
    report = moved(released, {"support": {"production": target}})
    assert report.failed and report.summary() == "0 prompts changed · 1 label move · 1 blocked"
    assert f"Error: support: production v1 -> v{target} is blocked: production is a protected label and {why}\n" \
           f"  fix: {fix}" in to_text(report)
    assert f"> :x: **blocked** `support: production v1 -> v{target}`: production is a protected label and {why}" \
           in to_markdown(report)


def test_approving_the_new_target_unblocks_the_move(released):
    released.commit({"labels.json": {"labels": {"support": {"production": 3}}}}, "promote v3")
    released.git("tag", "-a", "-m", "ok", "prompts/support/v3", "HEAD~2")
    assert not review(PromptStore(released.path)).failed


@pytest.mark.parametrize(("labels", "problem"), [
    ("{", "> :x: **invalid** `labels.json` $: invalid JSON"),
    ({"labels": {"support": {"production": 9}}}, "> :x: **invalid** `labels.json` $.labels.support.production: "
                                                 "support has no version 9 (the newest is 3)"),
    ({"labels": {"support": {"Prod": 1}}}, "> :x: **invalid** `labels.json` $.labels.support.Prod: invalid label name"),
])
def test_invalid_labels_file_at_head_fails_the_review(released, labels, problem):
    released.commit({"labels.json": labels}, "break labels")
    report = review(PromptStore(released.path))
    assert report.failed and report.summary().endswith("labels file invalid")
    assert problem in to_markdown(report)
    assert json.loads(to_json(report))["label_problems"][0]["line"] is not None


class Echo:
    """A client on any model name that answers the prompt itself, one token a word."""

    async def stream(self, model, prompt, sampling=None, *, logprobs=False, timeout_s=None):
        from promptops.triton.client import Answer

        yield prompt
        yield Answer(prompt, len(prompt.split()), len(prompt.split()), "stop")


def test_a_prompt_with_models_is_compared_base_to_head_on_each_model(repo):
    case = {"name": "brief", "vars": {"user": "Hi"}, "assert": [{"type": "contains", "value": "brief"}]}
    for system, branch in (("Be brief.", None), ("Be short.", "feature")):
        if branch:
            repo.git("checkout", "-q", "-b", branch)
        repo.commit({"prompts/tone.json": prompt_doc("{system} {user}", system=system, models=["a", "b"], tests=[case])})
    report = asyncio.run(build_review(PromptStore(repo.path), "main", "feature", client=Echo()))
    assert [(c.model, c.base.passed, c.head.passed) for c in report.prompts[0].cases] == [
        ("a", True, False), ("b", True, False)]
    assert "| brief | a | pass | fail :warning: newly failing | changed | 3 + 3 → 3 + 3 |" in to_markdown(report)
    assert "  brief [b]: pass -> fail (newly failing) (answer changed)" in to_text(report)
    assert [(r.model, r.version) for r in report.head_results()] == [("a", "head"), ("b", "head")]
    assert [c["model"] for c in json.loads(to_json(report))["prompts"][0]["cases"]] == ["a", "b"]


def test_a_dataset_missing_at_head_makes_the_head_invalid(repo):
    repo.commit({"prompts/keep.json": prompt_doc()}, "base")
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit({"prompts/rows.json": prompt_doc("{user}", tests=[{"dataset": "datasets/rows.jsonl"}])})
    report = asyncio.run(build_review(PromptStore(repo.path), "main", "feature", client=Echo()))
    assert report.failed and report.summary() == "1 prompt changed · 1 invalid · 0 tests newly failing · 0 answers changed"
    assert "prompts/rows.json at $.tests: dataset file prompts/datasets/rows.jsonl does not exist" in to_text(report)


def ticket(**properties):
    """A prompt answering a ticket: priority and summary (both required) plus `properties`."""
    schema = {"type": "object", "required": ["priority", "summary"],
              "properties": {"priority": {"enum": ["low", "high"]}, "summary": {"type": "string"}, **properties}}
    return prompt_doc(response_format={"type": "json_schema", "json_schema": {"name": "ticket", "schema": schema}})


def without_summary():
    document = ticket()
    del document["response_format"]["json_schema"]["schema"]["properties"]["summary"]
    document["response_format"]["json_schema"]["schema"]["required"] = ["priority"]
    return document


@pytest.fixture
def contract(repo):
    """main: triage v1 (approved, production -> v1) and notes (unlabelled), both answering tickets; then feature."""
    repo.commit({"prompts/triage.json": ticket(), "prompts/notes.json": ticket()}, "v1")
    repo.git("tag", "-a", "-m", "ok", "prompts/triage/v1", "HEAD")
    repo.commit({"labels.json": {"protected": ["production"], "labels": {"triage": {"production": 1}}}}, "labels")
    repo.git("checkout", "-q", "-b", "feature")
    return repo


def test_a_breaking_change_to_a_protected_prompt_fails_naming_the_change_and_the_override(contract):
    contract.commit({"prompts/triage.json": without_summary()}, "drop summary")
    report = review(PromptStore(contract.path))
    assert report.failed and report.summary() == "1 prompt changed · 1 breaking contract change · " \
                                                 "breaking change not allowed"
    text = to_markdown(report)
    assert "> :x: **breaking** triage has 1 breaking contract change, and production points at it — fix: keep the " \
           "contract compatible, or document the break: add a `Breaking-Change: <reason>` trailer" in text
    assert "#### `triage` (protected: production): 1 breaking, 0 compatible\n\n| | where | change |" in text
    assert "| :boom: **BREAKING** | `response_format.schema.properties.summary` | field `summary` removed (it was " \
           "required) |" in text


@pytest.mark.parametrize(("message", "allow", "source"), [
    ("drop summary\n\nBreaking-Change: the app reads summaries from the CRM now", None, "commit "),
    ("drop summary", "the app reads summaries from the CRM now", "--allow-breaking"),
])
def test_a_documented_breaking_change_passes_and_shows_its_reason(contract, message, allow, source):
    contract.commit({"prompts/triage.json": without_summary()}, message)
    report = asyncio.run(build_review(PromptStore(contract.path), "main", "feature", allow_breaking=allow))
    assert not report.failed and report.summary().endswith("breaking change allowed")
    assert f"> :warning: **breaking change allowed** ({source}" in to_markdown(report)
    assert "): the app reads summaries from the CRM now\n" in to_markdown(report)
    assert [o.reason for o in report.overrides] == ["the app reads summaries from the CRM now"]


def test_an_optional_field_added_is_compatible_and_passes(contract):
    contract.commit({"prompts/triage.json": ticket(note={"type": "string"})}, "add a note")
    report = review(PromptStore(contract.path))
    assert not report.failed and report.summary() == "1 prompt changed"
    assert "| compatible | `response_format.schema.properties.note` | optional field `note` added |" in to_markdown(report)


def test_a_breaking_change_to_an_unlabelled_prompt_is_reported_but_passes(contract):
    contract.commit({"prompts/notes.json": without_summary()}, "drop summary")
    report = review(PromptStore(contract.path))
    assert not report.failed and report.summary() == "1 prompt changed · 1 breaking contract change"
    assert "#### `notes`: 1 breaking, 0 compatible\n\nNo protected label points at this prompt: the break is reported and does not fail " \
           "the review." in to_markdown(report)


def test_moving_a_protected_label_to_a_breaking_version_fails(contract):
    contract.git("checkout", "-q", "main")
    contract.commit({"prompts/triage.json": without_summary()}, "v2")
    contract.git("tag", "-a", "-m", "ok", "prompts/triage/v2", "HEAD")
    contract.git("checkout", "-q", "-B", "feature")
    report = moved(contract, {"triage": {"production": 2}})
    assert report.failed and [str(m.move) for m in report.labels] == ["triage: production v1 -> v2"]
    assert "Error: triage: production v1 -> v2 brings 1 breaking contract change (from v1 to v2)\n  fix: keep" \
           in to_text(report)


@pytest.mark.parametrize(("args", "code"), [((), 1), (("--allow-breaking", "label breaking-change"), 0),
                                            (("--allow-breaking", " "), 2)])
def test_cli_exit_code(contract, args, code):
    from typer.testing import CliRunner

    from promptops.cli.app import app

    contract.commit({"prompts/triage.json": without_summary()}, "drop summary")
    result = CliRunner().invoke(app, ["review", "--base", "main", "--head", "feature", "--format", "text", *args])
    assert result.exit_code == code, result.output


def production(version=1, canary=None):
    """The labels file with production on `version`, and a canary (version, weight) when given."""
    entry = version if canary is None else {"version": version, "canary": {"version": canary[0], "weight": canary[1]}}
    return {"labels.json": {"protected": ["production"], "labels": {"support": {"production": entry}}}}


@pytest.mark.parametrize(("before", "after", "line", "sides"), [
    (None, (2, 10), "support production: v1, canary v2 at 10% (was 0%)", ("v1", "v2")),
    ((2, 10), (2, 50), "support production: v1, canary v2 at 50% (was 10%)", ("v1", "v2")),
    ((2, 10), None, "support production: v1, canary v2 ended (was 10%)", ("v2", "v1")),
])
def test_canary_changes_are_reviewed_between_the_versions_whose_share_moves(released, before, after, line, sides):
    released.git("checkout", "-q", "main")
    released.commit(production(canary=before), "labels")
    released.git("checkout", "-q", "-B", "feature")
    released.commit(production(canary=after), "canary")
    report = review(PromptStore(released.path))
    assert not report.failed and [str(m.move) for m in report.labels] == [line]
    assert (report.labels[0].diff.old_label, report.labels[0].diff.new_label) == sides
    assert f"#### `{line}` (protected)\n" in to_markdown(report)


def test_a_promoted_canary_is_the_labels_move(released):
    released.git("checkout", "-q", "main")
    released.commit(production(canary=(2, 10)), "labels")
    released.git("checkout", "-q", "-B", "feature")
    released.commit(production(2), "promote")
    assert [str(m.move) for m in review(PromptStore(released.path)).labels] == ["support: production v1 -> v2"]


def test_a_canary_of_an_unapproved_version_on_a_protected_label_fails(released):
    released.commit(production(canary=(3, 10)), "canary v3")
    report = review(PromptStore(released.path))
    assert report.failed and report.summary() == "0 prompts changed · 1 label move · 1 blocked"
    assert ("> :x: **blocked** `support production: v1, canary v3 at 10% (was 0%)`: production is a protected label "
            "and support v3, its canary, is not approved — fix: approve v3 first: "
            "`promptops approve support --version 3`") in to_markdown(report)
    assert json.loads(to_json(report))["labels"][0]["canary"] == {
        "primary": 1, "was": None, "now": {"version": 3, "weight": 10.0}}


def test_outputs_show_the_canary_versions_answers_before_and_after(repo):
    case = {"name": "brief", "vars": {"user": "Hi"}, "assert": [{"type": "contains", "value": "brief"}]}
    for n, system in ((1, "Be brief."), (2, "Be brief, kind.")):
        repo.commit({"prompts/support.json": prompt_doc("{system} {user}", system=system, tests=[case])}, f"v{n}")
        repo.git("tag", "-a", "-m", "ok", f"prompts/support/v{n}", "HEAD")
    repo.commit(production(), "labels")
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit(production(canary=(2, 10)), "canary")
    report = asyncio.run(build_review(PromptStore(repo.path), "main", "feature", client=Echo()))
    assert [(c.base.attempts[0].answer, c.head.attempts[0].answer) for c in report.labels[0].cases] == [
        ("Be brief. Hi", "Be brief, kind. Hi")]
    assert ("#### Model answers: `support production: v1, canary v2 at 10% (was 0%)`\n\n"
            "| case | v1 | v2 | answer |") in to_markdown(report)
