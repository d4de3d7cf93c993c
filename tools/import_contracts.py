"""The project's own import-linter contracts (configured in pyproject.toml, run by `make test`).

- ``public_faces``: outside a domain, only its ``service`` is imported; the doors (app, pages, CLI,
  the FHIR door) may also use its ``endpoints``, ``auth`` and ``schemas``. Never its tables
  (``models``) or queries (``repository``) from outside.
- ``local_imports``: no import inside a function, unless a comment on that line or the one above
  says why (an import cycle is a design problem to solve, not to hide).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from importlinter import Contract, ContractCheck, fields, output


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class PublicFacesContract(Contract):
    type_name = "public_faces"

    domains = fields.ListField(subfield=fields.StringField())
    public = fields.ListField(subfield=fields.StringField())
    doors = fields.ListField(subfield=fields.StringField())
    door_faces = fields.ListField(subfield=fields.StringField())
    # "importer -> imported" pairs allowed on purpose, each explained in the configuration.
    allowed = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph, verbose: bool) -> ContractCheck:  # noqa: ANN001
        allowed = set()
        for pair in self.allowed or []:  # type: ignore[union-attr]
            importer, _, imported = (part.strip() for part in str(pair).partition("->"))
            allowed.add((importer, imported))
        doors = [str(d) for d in self.doors]  # type: ignore[union-attr]
        broken = []
        for domain in (str(d) for d in self.domains):  # type: ignore[union-attr]
            faces = {f"{domain}.{face}" for face in self.public} | {domain}  # type: ignore[union-attr]
            door_faces = faces | {f"{domain}.{face}" for face in self.door_faces}  # type: ignore[union-attr]
            for imported in sorted(graph.find_descendants(domain) | {domain}):
                for importer in sorted(graph.find_modules_that_directly_import(imported)):
                    if _within(importer, domain):
                        continue
                    if any(_within(importer, a) and _within(imported, b) for a, b in allowed):
                        continue
                    is_door = any(_within(importer, door) for door in doors)
                    if imported in (door_faces if is_door else faces):
                        continue
                    lines = sorted({d["line_number"] for d in graph.get_import_details(importer=importer,
                                                                                       imported=imported)})
                    broken.append((importer, imported, lines))
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["broken"]:
            output.print_error(f"- {importer} -> {imported} (l.{', '.join(map(str, lines))})", bold=False)
        output.new_line()
        output.print("Import the domain's service instead; it is the domain's public face.")


def _function_imports_without_reason(path: Path) -> list[int]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                line = lines[inner.lineno - 1]
                above = lines[inner.lineno - 2].strip() if inner.lineno > 1 else ""
                if "#" not in line and not above.startswith("#"):
                    found.append(inner.lineno)
    return sorted(set(found))


class LocalImportsContract(Contract):
    type_name = "local_imports"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:  # noqa: ANN001
        broken = []
        for package in (str(p) for p in self.packages):  # type: ignore[union-attr]
            for module in sorted(graph.find_descendants(package) | {package}):
                spec = importlib.util.find_spec(module)
                if spec is None or not spec.origin or not spec.origin.endswith(".py"):
                    continue
                for line in _function_imports_without_reason(Path(spec.origin)):
                    broken.append((module, line))
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module, line in check.metadata["broken"]:
            output.print_error(f"- {module} (l.{line}): an import inside a function, with no comment saying why",
                               bold=False)
        output.new_line()
        output.print("Move the import to the top of the module; if a cycle stops you, the code is in the "
                     "wrong place. Keep it local only for a stated reason (a heavy optional import).")
