"""Every message, help text and docstring of the package that names a command, a setting, a file, an extra or a module
names a real one: the commands and options of ``workflows-yolov5-seg`` (``cli.py``), the environment variables of
``settings.py``, files of this checkout, the extras of ``pyproject.toml`` and the package's own modules and names.

The strings are collected from the source (``ast``: literals, f-strings with their placeholders as ``{}``), so a new
message is checked without being listed here.
"""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import dataclass
from pathlib import Path

from workflows_yolov5_seg import cli, settings

from support.paths import REPOSITORY

PACKAGE = REPOSITORY / "workflows_yolov5_seg"
PROGRAM = "workflows-yolov5-seg"

COMMAND = re.compile(rf"{PROGRAM}\s+([a-z][a-z-]*)")
COMMAND_OPTIONS = re.compile(r"\b([a-z][a-z-]*)((?:\s+--[a-z][a-z-]*(?:[ =][A-Z][A-Z_,.:]*)?)+)")
OPTION = re.compile(r"--[a-z][a-z-]*")
PYTHON_MODULE = re.compile(r"python -m ([A-Za-z_][\w.]*)")
PACKAGE_SETTING = re.compile(r"\bWORKFLOWS_YOLOV5_SEG_[A-Z0-9_]+\b")
CHECKOUT_FILE = re.compile(r"(?<![\w/.-])((?:docs|benchmarks|docker|examples|tools|training|blocks)/[\w./-]*[\w/])")
EXTRA = re.compile(rf"{PROGRAM}\[([\w,-]+)\]")
PACKAGE_NAME = re.compile(r"\bworkflows_yolov5_seg(?:\.[A-Za-z_]\w*)+")
# The project's name followed by a noun, not a command: "the workflows-yolov5-seg plugin".
PROSE_AFTER_PROGRAM = {"plugin", "package"}
# Files named for another repository, with where they are.
ELSEWHERE = {"docker/config/cpu_http.py": "roboflow/inference (server.py builds the app as its CPU image does)"}


@dataclass(frozen=True)
class Message:
    where: str  # file:line
    text: str


def string_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
    return None


def collect_messages() -> list[Message]:
    messages = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        parts_of_fstrings = {
            id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
        }
        for node in ast.walk(tree):
            text = None if id(node) in parts_of_fstrings else string_of(node)
            if text:
                messages.append(Message(f"{path.relative_to(REPOSITORY)}:{node.lineno}", " ".join(text.split())))
    return messages


MESSAGES = collect_messages()


def mentions(pattern: re.Pattern[str], group: int = 1) -> list[tuple[str, str]]:
    """``(where, what)`` for every match of ``pattern`` in every message."""
    return [(m.where, found.group(group)) for m in MESSAGES for found in pattern.finditer(m.text)]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_the_messages_are_collected() -> None:
    """The patterns find what they are for (else every check below would pass on nothing)."""
    assert len(MESSAGES) > 500
    assert mentions(COMMAND) and mentions(PACKAGE_SETTING, 0) and mentions(CHECKOUT_FILE) and mentions(EXTRA)
    assert any(command == "serve" for _, command in mentions(COMMAND_OPTIONS))


def test_every_named_command_exists() -> None:
    commands = set(subparsers())
    wrong = [
        (where, name) for where, name in mentions(COMMAND) if name not in commands and name not in PROSE_AFTER_PROGRAM
    ]
    assert wrong == [], f"commands are {sorted(commands)}"


def test_every_named_option_belongs_to_its_command() -> None:
    commands = subparsers()
    wrong = [
        (m.where, name, option)
        for m in MESSAGES
        for found in COMMAND_OPTIONS.finditer(m.text)
        if (name := found.group(1)) in commands
        for option in OPTION.findall(found.group(2))
        if option not in options_of(commands[name])
    ]
    assert wrong == []


def test_python_dash_m_names_a_runnable_module() -> None:
    wrong = []
    for where, module in mentions(PYTHON_MODULE):
        relative = Path(*module.split("."))
        runnable = (REPOSITORY / relative.with_suffix(".py")).is_file() or (
            REPOSITORY / relative / "__main__.py"
        ).is_file()
        if not runnable:
            wrong.append((where, module))
    assert wrong == [], f"use '{PROGRAM} COMMAND' (cli.py) instead"


def test_every_named_setting_exists() -> None:
    names = {setting.name for setting in settings.SETTINGS}
    wrong = [(where, name) for where, name in mentions(PACKAGE_SETTING, 0) if name not in names]
    assert wrong == []


def test_every_named_file_exists() -> None:
    wrong = [
        (where, name)
        for where, name in mentions(CHECKOUT_FILE)
        if not (REPOSITORY / name).exists() and name not in ELSEWHERE
    ]
    assert wrong == []


def declared_extras() -> set[str]:
    """The keys of pyproject.toml's ``[project.optional-dependencies]`` (read as text: tomllib needs Python 3.11)."""
    text = (REPOSITORY / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([A-Za-z0-9_-]+)\s*=", section, re.MULTILINE))


def test_every_named_extra_exists() -> None:
    extras = declared_extras()
    assert {"onnx-cpu", "onnx-gpu", "trt", "inference"} <= extras
    named = [(where, extra) for where, group in mentions(EXTRA) for extra in group.split(",")]
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MissingDependencyError":
                extra = string_of(node.args[1]) if len(node.args) > 1 else None
                named.append((f"{path.relative_to(REPOSITORY)}:{node.lineno}", extra or "{}"))
    wrong = [(where, extra) for where, extra in named if extra != "{}" and extra not in extras]
    assert wrong == [], f"extras are {sorted(extras)}"


def defines(body: list[ast.stmt], name: str) -> list[ast.stmt] | None:
    """The body of ``name`` (a class) or ``[]`` (any other name) when ``body`` defines it, else ``None``."""
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return []
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return []
    return None


def resolves(dotted: str) -> bool:
    """Whether ``workflows_yolov5_seg.a.b.Name.attribute`` is a module of the package, or a name defined in one."""
    parts = dotted.split(".")
    folder = REPOSITORY
    for index, part in enumerate(parts):
        if (folder / part / "__init__.py").is_file():
            folder = folder / part
            module = folder / "__init__.py"
        elif (folder / f"{part}.py").is_file():
            module = folder / f"{part}.py"
            index += 1
            break
        else:
            break
    else:
        return True
    body: list[ast.stmt] | None = ast.parse(module.read_text()).body
    for name in parts[index:]:
        body = defines(body or [], name)
        if body is None:
            return False
    return True


def test_every_named_module_or_name_of_the_package_exists() -> None:
    wrong = [(where, name) for where, name in mentions(PACKAGE_NAME, 0) if not resolves(name.rstrip("."))]
    assert wrong == []
