"""The docs cannot drift from the code: every flag, variable and module path they rely on is real."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from crq import import_crq
from fleettickets import cli, edge, faults, settings
from inc import import_inc

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PRODUCTION = [*ROOT.glob("fleettickets/*.py"), *ROOT.glob("inc/*.py"), *ROOT.glob("crq/*.py"),
              ROOT / "run_migrations.py"]


@pytest.mark.parametrize("entrypoint", [import_inc, import_crq], ids=lambda m: m.DATASET.name)
def test_every_cli_flag_is_in_the_readme(entrypoint):
    parser = cli.build_parser(entrypoint.DATASET, getattr(entrypoint, "COMMANDS", ()))
    flags = {option for action in parser._actions for option in action.option_strings
             if option.startswith("--") and option != "--help"}
    assert "--status" in flags
    missing = {flag for flag in flags if f"`{flag}" not in README}
    assert not missing, f"README does not document {sorted(missing)}"


def test_the_configuration_table_is_the_settings_registry():
    assert settings.configuration_table() in README, \
        "README's configuration table differs from settings.VARIABLES: paste in python -m fleettickets.settings"


def test_env_example_names_every_variable_an_operator_sets():
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    assert named == {variable.name for variable in settings.VARIABLES if variable.in_env_example}


def test_only_the_settings_module_reads_the_environment():
    readers = {path.name for path in PRODUCTION if "os.environ" in path.read_text()}
    assert readers <= {"settings.py", "faults.py"}, readers
    assert faults.FAULT_VARIABLE in settings.BY_NAME


@pytest.mark.parametrize("path", ["Dockerfile", "run_ingest.sh", ".ci/run", "dev", "README.md"])
def test_module_paths_named_in_scripts_exist(path):
    text = (ROOT / path).read_text()
    modules = set(re.findall(r"-m ([a-z_]+(?:\.[a-z_]+)*)", text)) - {"pytest", "venv", "slow", "compileall"}
    scripts = set(re.findall(r"\b([a-z_]+\.(?:py|sh))\b", text))
    for module in modules:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{path} runs missing module {module}"
    for script in scripts:
        assert (ROOT / script).is_file() or any(ROOT.glob(f"**/{script}")), f"{path} names missing {script}"


def test_the_image_holds_the_package_and_its_entrypoints_installed_from_the_hashed_lock():
    """docker build cannot run here: this reads the Dockerfile for what the image would hold."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {source for line in re.findall(r"^COPY (.*)$", dockerfile, flags=re.M) for source in line.split()[:-1]}
    assert copied == {"requirements.lock", "fleettickets/", "inc/", "crq/", "migrations/", "run_migrations.py",
                      "run_ingest.sh"}
    development = re.compile(r"^\s*(?:from|import) (?:devstack|support|tests|benchmarks)\b", re.M)
    assert not [path.name for path in PRODUCTION if development.search(path.read_text())], \
        "production code imports development tooling the image does not hold"
    base = re.search(r"^FROM python:([0-9]+)\.([0-9]+)\.([0-9]+)-slim-[a-z]+(@sha256:[0-9a-f]{64})?$", dockerfile, re.M)
    assert base, "the base image is pinned to an exact tag"
    # The image runs the original system's Python; the project supports every Python from Debian 12's (3.11) up
    # to it, and the locks are universal over that range, so each Python installs them with hashes.
    assert (int(base[1]), int(base[2])) == (3, 12)
    assert (3, 11) <= sys.version_info[:2] <= (3, 12), "the tests run on a Python the project supports"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.11"' in pyproject
    assert 'target-version = "py311"' in pyproject and 'python_version = "3.11"' in pyproject
    for lock in ("requirements.lock", "requirements-dev.lock"):
        command = (ROOT / lock).read_text().splitlines()[1]
        assert "--python-version 3.11 " in command and "--universal" in command, f"{lock} is compiled for 3.11 up"
    assert "pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock" in dockerfile
    # Every run finds the package's bytecode, built by the image's own Python after the last COPY, as root.
    lines = dockerfile.splitlines()
    compiled = lines.index("RUN python -m compileall -q fleettickets inc crq")
    last_copy = max(number for number, line in enumerate(lines) if line.startswith("COPY "))
    assert last_copy < compiled < lines.index("USER fleettickets")
    lock = (ROOT / "requirements.lock").read_text()
    pinned = re.findall(r"^([a-z0-9_.-]+)==[^ ]+ \\$", lock, flags=re.M)
    assert {"boto3", "psycopg", "httpx", "orjson"} <= set(pinned)
    assert lock.count("--hash=sha256:") >= len(pinned)
    assert not {"pytest", "moto", "hypothesis", "mypy", "ruff"} & set(pinned), "dev tools in the production lock"


def test_readme_test_command_is_what_ci_runs():
    assert "$ ./dev test" in README
    assert "\n./dev test\n" in (ROOT / ".ci" / "run").read_text()


def test_ci_installs_from_the_hashed_dev_lock():
    ci = (ROOT / ".ci" / "run").read_text() + (ROOT / "dev").read_text()
    assert "--require-hashes -r requirements-dev.lock" in ci


def test_every_exit_code_is_in_the_readme():
    codes = {edge.EXIT_OK, edge.EXIT_FAILED, edge.EXIT_USAGE, edge.EXIT_INTERRUPTED, edge.EXIT_TERMINATED,
             edge.EXIT_HANGUP}
    assert not {code for code in codes if f"`{code}`" not in README}


def test_every_bad_input_case_is_in_the_catalogue():
    from test_bad_inputs import CASES

    catalogue = (ROOT / "docs" / "implementation.md").read_text()
    assert not [case.id for case in CASES if f"`{case.id}`" not in catalogue]


def test_every_test_a_doc_cites_as_proof_exists():
    """`test_x.py::test_name`, and `::test_other` after it on the same line (same file), must name a real test."""
    cited = set()
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for line in doc.read_text(encoding="utf-8").splitlines():
            file = None
            for named_file, name in re.findall(r"`(test_\w+\.py)?(?:::(\w+))?`", line):
                file = named_file or file
                if file:
                    cited.add((doc.name, file, name))
    assert len(cited) > 10
    for doc, file, name in sorted(cited):
        path = TEST_FILES.get(file, ROOT / "tests" / file)
        assert path.exists(), f"{doc} cites {file}, which does not exist"
        if name:
            assert re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"), re.M), f"{doc} cites {file}::{name}"


def test_ci_runs_the_readmes_two_commands_as_a_newcomer_on_a_bare_debian():
    """.ci/newcomer is what proves the README's promise on the machine it names; it must run those two commands."""
    assert "\n.ci/newcomer\n" in (ROOT / ".ci" / "run").read_text()
    newcomer = (ROOT / ".ci" / "newcomer").read_text()
    assert "debootstrap --variant=minbase bookworm" in newcomer
    commands = re.findall(r'^for command in (.*); do$', newcomer, flags=re.M)
    assert commands and all(line.split('" "')[0] == '"./dev up' for line in commands)
    for command in ("./dev up", "./dev test"):
        assert f"$ {command}\n" in README
        assert all(f'"{command}' in line for line in commands), f"the newcomer does not run {command}"


TEST_FILES = {path.name: path for path in ROOT.glob("tests/*/test_*.py")}
"""A test module by its name alone, as the docs cite it (`test_x.py::test_name`), wherever its subject files it."""
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "migrations").rglob("*.md"))]
TOP = ("fleettickets/", "tests/", "migrations/", "docs/", "benchmarks/", "samples/", "inc/", "crq/", ".ci/")
# `tests/test_x.py::test_name…` (a test named by its first words), `fleettickets/plan.py`, `docs/x.md#anchor`.
NAMED_PATH = re.compile(r"`((?:" + "|".join(re.escape(top) for top in TOP) + r")[\w./*<>-]*)(?:::(\w+)(…)?)?")
LINKED_PATH = re.compile(r"\]\(((?!https?:|#|mailto:)[^)#\s]+)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_path_and_test_a_document_names_exists(document):
    """A doc that names a moved file (tests/oracle.py was one) or a renamed test sends its reader nowhere."""
    text = document.read_text(encoding="utf-8").split("## Retired words")[0]  # the glossary names the gone
    missing = []
    for path, test, prefix in NAMED_PATH.findall(text):
        target = ROOT / path.rstrip(".,")
        if re.search(r"[*<]|NN|\.log$", path):  # a pattern, a placeholder, or a log a run writes
            continue
        if not target.exists():
            missing.append(path)
        elif test:
            names = re.findall(r"^def (test_\w+)", target.read_text(encoding="utf-8"), re.M)
            if not any(name == test or (prefix and name.startswith(test)) for name in names):
                missing.append(f"{path}::{test}{prefix}")
    for module, test, prefix in re.findall(r"`(?:tests/)?(test_\w+\.py)::(\w+)(…)?", text):
        target = TEST_FILES.get(module, ROOT / "tests" / module)
        names = re.findall(r"^def (test_\w+)", target.read_text(encoding="utf-8"), re.M) if target.exists() else []
        if not any(name == test or (prefix and name.startswith(test)) for name in names):
            missing.append(f"{module}::{test}{prefix}")
    for link in LINKED_PATH.findall(text):
        if not (document.parent / link).exists():
            missing.append(link)
    assert not missing, f"{document.relative_to(ROOT)} names what does not exist: {missing}"


def test_no_retired_word_is_used_again():
    """docs/glossary.md lists the words that named one concept twice; the code and the docs use the one name
    (docs/history/ keeps what things were called when they were made)."""
    glossary = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    words = re.findall(r"^- `([^`]+)`:", glossary.split("## Retired words")[1], re.M)
    assert len(words) >= 4
    texts = [*PRODUCTION, *ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/*.py"),
             *(document for document in DOCUMENTS if "history" not in document.parts)]
    used = [(str(path.relative_to(ROOT)), word) for path in texts if path.name not in ("glossary.md", "test_docs.py")
            for word in words if word in path.read_text(encoding="utf-8")]
    assert not used, f"retired words in use (docs/glossary.md): {used}"
