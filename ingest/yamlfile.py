"""YAML documents that remember where each value came from.

``load_yaml`` returns the plain data and a :class:`Locator` that maps a pydantic
error location (``("channels", "ops", "url")``) back to a line in the file, so
every config or rule problem can be reported as ``file:line: message``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ingest.errors import Problem

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Locator:
    """Finds the line of a value in a composed YAML node tree."""

    file: str
    root: yaml.Node | None

    def line(self, loc: Sequence[int | str]) -> int | None:
        node = self.root
        best = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                found = next((v for k, v in node.value if k.value == key), None)
                if found is None:
                    break
                key_node = next(k for k, v in node.value if k.value == key)
                best = key_node.start_mark.line + 1
                node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(node.value):
                    break
                node = node.value[key]
                best = node.start_mark.line + 1
            else:
                break
        return best

    def problems(self, exc: ValidationError, prefix: Sequence[int | str] = ()) -> list[Problem]:
        """Turn a pydantic error into located problems, one per fault."""
        out = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not _is_union_tag(p)]
            field = ".".join(str(p) for p in [*prefix, *loc]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check its spelling against the reference in README.md)"
            out.append(Problem(self.file, self.line([*prefix, *loc]), f"{field}: {msg}"))
        return out


# libyaml's parser when PyYAML was built with it (the wheels are): several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _is_union_tag(part: int | str) -> bool:
    """Pydantic inserts discriminator tags and type names into union error paths."""
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def load_yaml(path: Path, *, interpolate_env: bool = False) -> tuple[Any, Locator]:
    """Read a YAML file; raise ``ValueError`` carrying a located :class:`Problem`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlProblem(Problem(str(path), None, f"cannot read: {exc.strerror}")) from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise YamlProblem(Problem(str(path), line, "not UTF-8 text; save the file as UTF-8")) \
            from exc
    return parse_yaml(text, str(path), interpolate_env=interpolate_env)


def parse_yaml(text: str, name: str, *, interpolate_env: bool = False) -> tuple[Any, Locator]:
    """Parse YAML text (named ``name`` in messages) into data and a locator."""
    if interpolate_env:
        text = interpolate(text, name)
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()  # parsed once: the node tree locates, then builds
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(Problem(name, line, f"not valid YAML: {problem}")) from exc
    finally:
        loader.dispose()
    return data, Locator(name, root)


def interpolate(text: str, name: str) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` with environment values (not in comments)."""
    missing: list[Problem] = []
    out = []
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        if line.lstrip().startswith("#"):
            out.append(line)
            continue

        def sub(m: re.Match[str], lineno: int = lineno) -> str:
            value = os.environ.get(m.group(1))
            if value is not None:
                return value
            if m.group(2) is not None:
                return m.group(2)
            missing.append(Problem(
                name, lineno, f"environment variable {m.group(1)} is not set "
                f"(set it, or write ${{{m.group(1)}:-default}})"))
            return ""

        out.append(_ENV_REF.sub(sub, line))
    if missing:
        raise YamlProblem(*missing)
    return "".join(out)


class YamlProblem(Exception):
    """Raised by this module; callers wrap it in ConfigError or RuleError."""

    def __init__(self, *problems: Problem) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in problems))
