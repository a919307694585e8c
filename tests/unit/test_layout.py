"""The shape the code keeps: workflows speak only the contract, the API loads no provider code, and each
rule has one home."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["workflows", "activities", "api", "db", "events", "rules", "stack", "worker.py", "settings.py"]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_workflows_import_only_the_contract_temporalio_and_the_standard_library():
    for path in sorted((ROOT / "workflows").glob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in {"temporalio", "workflows", "__future__"}, (
                f"{path.name} imports {name}"
            )


def test_the_contract_module_is_standard_library_only():
    for name in imported_modules(ROOT / "workflows" / "models.py"):
        assert name.split(".")[0] in sys.stdlib_module_names or name == "__future__", name


def test_the_api_process_loads_no_provider_client():
    clients = "('activities.providers', 'activities.reminders', 'httpx')"
    code = f"import sys, api.main; print(sorted(m for m in sys.modules if m.startswith({clients})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_no_product_file_is_over_350_lines():
    files = [
        p
        for entry in PRODUCT
        for p in ([ROOT / entry] if entry.endswith(".py") else (ROOT / entry).rglob("*.py"))
    ]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 350}
    assert not long, long


def test_the_reminder_workflow_reads_as_one_loop_under_300_lines():
    assert len((ROOT / "workflows" / "reminder.py").read_text().splitlines()) < 300


def test_search_attributes_are_defined_once():
    """Only the contract names them with their types; everything else takes them from it."""
    offenders = []
    for entry in [*PRODUCT, "devstack"]:
        for path in (ROOT / entry).rglob("*.py") if not entry.endswith(".py") else [ROOT / entry]:
            text = path.read_text()
            if path.name not in {"models.py", "search.py"} and '"AppointmentTime": "Datetime"' in text:
                offenders.append(str(path))
            if path.name != "search.py" and "SearchAttributeKey.for_" in text:
                offenders.append(str(path))
    assert offenders == []
