"""The built wheel installs on its own: a free distribution name, the `promptops` command, the package data."""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# build/ and *.egg-info are written next to the sources: build a copy, never the working tree
SKIP = shutil.ignore_patterns(".git", ".venv*", ".promptops", ".hypothesis", ".pytest_cache", ".ruff_cache",
                              "__pycache__", "*.pyc", "build", "dist", "*.egg-info", "artifacts")
CLEAN = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _pip_wheel(src: Path, out: Path, isolated: bool) -> subprocess.CompletedProcess[str]:
    flags = [] if isolated else ["--no-build-isolation"]
    return subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *flags, "-w", str(out), str(src)],
                          env=CLEAN, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", symlinks=True, ignore=SKIP)
    # offline with .venv's setuptools if it reads `license = "Apache-2.0"` (>=77), else isolated as `make venv` builds
    result = _pip_wheel(tmp / "src", tmp / "dist", isolated=False)
    if result.returncode != 0:
        result = _pip_wheel(tmp / "src", tmp / "dist", isolated=True)
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp / "dist").glob("*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "v")], env=CLEAN, check=True, timeout=120)
    subprocess.run([str(tmp / "v/bin/pip"), "install", "-q", "--no-deps", str(wheel)], env=CLEAN, check=True,
                   timeout=120)
    # dependencies from this interpreter's site-packages: its editable promptops is a .pth hook, inert on PYTHONPATH
    env = CLEAN | {"PYTHONPATH": os.pathsep.join(dict.fromkeys(map(sysconfig.get_path, ("purelib", "platlib"))))}
    return wheel, tmp / "v", env


def test_wheel_carries_the_distribution_name_and_package_data(built):
    wheel, _, _ = built
    assert PROJECT["name"] != "promptops"  # that name is another project's on PyPI
    assert wheel.name.startswith(f"{PROJECT['name'].replace('-', '_')}-{PROJECT['version']}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("promptops/") and n.endswith(".schema.json") for n in names), names
    assert any(n.endswith(("backends/vllm/model.py", "backend/vllm/model.py")) for n in names), names


def test_installed_command_runs_from_the_wheel(built):
    _, venv, env = built
    where = subprocess.run([str(venv / "bin/python"), "-c", "import promptops; print(promptops.__file__)"],
                           cwd=venv, env=env, capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    result = subprocess.run([str(venv / "bin/promptops"), "--help"], cwd=venv, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Usage: promptops" in result.stdout


def test_pip_show_names_the_version(built):
    _, venv, _ = built
    result = subprocess.run([str(venv / "bin/pip"), "show", PROJECT["name"]], env=CLEAN, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"Name: {PROJECT['name']}" in result.stdout and f"Version: {PROJECT['version']}" in result.stdout
