"""The repository's promises: CI runs exactly the README's test command; the tests mirror the package (and cannot
drift from it), share helpers only through tests/support/, and the test paths the documentation cites exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from support.paths import REPOSITORY as ROOT


def readme_commands() -> list[str]:
    quick_start = ROOT.joinpath("README.md").read_text().split("## Demo and tests", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)]


def test_readme_has_two_setup_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in command for command in commands)
    assert "demo" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = [line for line in ROOT.joinpath(".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == readme_commands()[1]
    assert "set -euo pipefail" in ci_lines


# --- the tests' layout ----------------------------------------------------------------------------------------------

PACKAGE = ROOT / "workflows_yolov5_seg"
TESTS = ROOT / "tests"
# Under tests/ but not mirrors of a package module: suites that cut across modules, the lab code's tests, helpers,
# a neighbour plugin the block must load beside, and data files.
NOT_MIRRORS = ("suites", "lab", "support", "plugins", "data")
# Package modules with nothing of their own to test, and why.
WITHOUT_TESTS = {
    "package_layout.py": "file-name constants only (the loaders that use them are tested)",
    "yolov5_instance_segmentation/__init__.py": "empty",
}
# Where a test may take a workflow definition from (besides the product's examples/*.json files).
WORKFLOW_BUILDER = TESTS / "support" / "workflows.py"


def package_modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def mirror_of(module: Path) -> Path:
    """``tests/<folders>/test_<name>.py`` for ``workflows_yolov5_seg/<folders>/<name>.py`` (``test_init.py`` for an
    ``__init__.py``)."""
    relative = module.relative_to(PACKAGE)
    name = "init" if relative.stem == "__init__" else relative.stem
    return TESTS / relative.parent / f"test_{name}.py"


def all_test_modules() -> list[Path]:
    return sorted(path for path in TESTS.rglob("test_*.py") if "__pycache__" not in path.parts)


def test_every_package_module_has_a_mirror_test_module() -> None:
    missing = [
        str(module.relative_to(ROOT))
        for module in package_modules()
        if module.relative_to(PACKAGE).as_posix() not in WITHOUT_TESTS and not mirror_of(module).is_file()
    ]
    assert not missing, (
        f"no mirror test module for {missing}: add tests/<folders>/test_<module>.py (for a module with nothing to "
        "test, an entry with the reason in WITHOUT_TESTS)"
    )


def test_exempt_modules_exist_and_have_no_mirror() -> None:
    for name in WITHOUT_TESTS:
        assert (PACKAGE / name).is_file(), f"WITHOUT_TESTS names {name}, which is gone: drop the entry"
        assert not mirror_of(PACKAGE / name).exists(), f"{name} has tests now: drop its WITHOUT_TESTS entry"


def test_every_other_test_module_mirrors_a_package_module() -> None:
    mirrors = {mirror_of(module) for module in package_modules()}
    strays = [
        str(path.relative_to(ROOT))
        for path in all_test_modules()
        if path.relative_to(TESTS).parts[0] not in NOT_MIRRORS and path not in mirrors
    ]
    assert not strays, (
        f"{strays} mirror no package module: name them after the module they test, or move them to "
        "tests/suites/ (they cut across modules) or tests/lab/ (they test lab code)"
    )


def test_test_folders_are_packages() -> None:
    """Test modules of different folders may share a name (tests/test_init.py, tests/backends/test_init.py)."""
    folders = {path.parent for path in all_test_modules()} | {TESTS / "support"}
    assert not [str(folder.relative_to(ROOT)) for folder in folders if not (folder / "__init__.py").is_file()]


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    """Shared helpers, fixtures' models and constants live in tests/support/."""
    bad = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[0] in ("conftest", "tests") or any(part.startswith("test_") for part in name.split("."))
    ]
    assert not bad, f"import from tests/support/ instead: {bad}"


def test_workflow_definitions_come_from_the_builder() -> None:
    builders = [
        str(path.relative_to(ROOT))
        for path in sorted(TESTS.rglob("*.py"))
        if path not in (WORKFLOW_BUILDER, Path(__file__)) and '"WorkflowImage"' in path.read_text(encoding="utf-8")
    ]
    assert not builders, f"build workflow definitions with {WORKFLOW_BUILDER.relative_to(ROOT)}: {builders}"


def test_every_test_path_the_documentation_cites_exists() -> None:
    documents = [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        ROOT / "training" / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]
    cited = {
        (document.relative_to(ROOT), path)
        for document in documents
        for path in re.findall(r"\btests/[\w/.-]*\w", document.read_text(encoding="utf-8"))
    }
    assert cited
    placeholders = {"tests/test_X.py", "tests/backends/test_X.py"}  # CONTRIBUTING.md's statement of the layout
    missing = sorted(
        f"{document}: {path}" for document, path in cited if path not in placeholders and not (ROOT / path).exists()
    )
    assert not missing, missing
