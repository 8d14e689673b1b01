"""The repository's own CI files: workflows lint clean, the pre-commit hook works from another repo."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_workflows_pass_actionlint():
    workflows = sorted(str(p) for p in (ROOT / ".github/workflows").glob("*.yml"))
    result = subprocess.run([str(BIN / "actionlint"), *workflows], capture_output=True, text=True)
    assert len(workflows) >= 3 and result.returncode == 0, result.stdout


@pytest.mark.parametrize(("doc", "code"), [({"config": {}, "template": "{user}"}, 0),
                                           ({"config": {}, "template": "{nope}"}, 1)])
def test_pre_commit_hook_via_try_repo(repo, doc, code):
    if shutil.which("git") is None:
        pytest.fail("git is required")
    repo.write({"prompts/p.json": json.dumps(doc)})
    repo.git("add", "-A")
    result = subprocess.run([str(BIN / "pre-commit"), "try-repo", str(ROOT), "promptops-validate", "--all-files"],
                            cwd=repo.path, capture_output=True, text=True, timeout=900)
    assert result.returncode == code, result.stdout + result.stderr
