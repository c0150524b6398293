"""The docs cannot drift from the code: every flag, variable and module path they rely on is real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pipeline
from crq import import_crq
from inc import import_inc

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SOURCES = [*ROOT.glob("*.py"), *ROOT.glob("inc/*.py"), *ROOT.glob("crq/*.py")]


def environment_variables() -> set[str]:
    names = set()
    for path in SOURCES:
        if path.name == "localstack.py":
            continue
        text = path.read_text()
        names |= set(re.findall(r'(?:require|environ\.get|number)\(\s*"([A-Z][A-Z0-9_]+)"', text))
        names |= set(re.findall(r'^[A-Z_]+_VARIABLES? = .*?"([A-Z][A-Z0-9_]+)"', text, flags=re.M))
    return names


@pytest.mark.parametrize("dataset", [import_inc.DATASET, import_crq.DATASET], ids=lambda d: d.name)
def test_every_cli_flag_is_in_the_readme(dataset):
    flags = {option for action in pipeline.build_parser(dataset)._actions for option in action.option_strings
             if option.startswith("--") and option != "--help"}
    assert flags
    missing = {flag for flag in flags if f"`{flag}" not in README}
    assert not missing, f"README does not document {sorted(missing)}"


def test_every_environment_variable_is_in_the_readme_and_env_example():
    names = environment_variables()
    assert {"DATABASE_URL", "RUSTFS_ENDPOINT", "RUSTFS_SECRET_KEY", "RUSTFS_BUCKET", "FLEETTICKETS_FAULT",
            "GEOCODER_API_KEY", "GEOCODER_RPS", "GEOCODER_DAILY_BUDGET"} <= names
    assert not {n for n in names if f"`{n}`" not in README}
    example = (ROOT / ".env.example").read_text()
    assert not {n for n in names - {"FLEETTICKETS_FAULT", "AWS_MAX_ATTEMPTS", "PG_BINDIR", "GEOCODER_TIMEOUT"}
                if f"\n{n}=" not in "\n" + example}


@pytest.mark.parametrize("path", ["Dockerfile", "run_ingest.sh", ".ci/run", "dev", "README.md"])
def test_module_paths_named_in_scripts_exist(path):
    text = (ROOT / path).read_text()
    modules = set(re.findall(r"-m ([a-z_]+(?:\.[a-z_]+)*)", text)) - {"pytest", "venv", "slow"}
    scripts = set(re.findall(r"\b([a-z_]+\.(?:py|sh))\b", text))
    for module in modules:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{path} runs missing module {module}"
    for script in scripts:
        assert (ROOT / script).is_file() or any(ROOT.glob(f"**/{script}")), f"{path} names missing {script}"


def test_dockerfile_copies_every_top_level_module():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for path in ROOT.glob("*.py"):
        assert path.name in dockerfile, f"Dockerfile does not copy {path.name}"


def test_readme_test_command_is_what_ci_runs():
    assert "$ ./dev test" in README
    assert "\n./dev test\n" in (ROOT / ".ci" / "run").read_text()


def test_every_bad_input_case_is_in_the_catalogue():
    from test_bad_inputs import CASES

    catalogue = (ROOT / "docs" / "implementation.md").read_text()
    assert not [case.id for case in CASES if f"`{case.id}`" not in catalogue]
