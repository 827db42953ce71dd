"""One `synthgate` namespace (issue 17, item 3): the code imports `synthgate.models`, never a bare
`models`, and the wheel installs only `synthgate/` (so it never shadows another `models` or `tasks`).

In a checkout `synthgate/<folder>` is a symlink to the top-level folder; a bare `import models`
would load the same file a second time under another name (two ledgers, two registries, failed
isinstance checks), so it is refused here for every Python file in the repository.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("flows", "tasks", "models", "validation", "governance")
SOURCES = (*FOLDERS, "synthgate", "tests", "benchmarks", "scripts", "docs", "deploy")


def _python_files() -> list[Path]:
    files: list[Path] = []
    for top in SOURCES:
        base = ROOT / top
        if not base.is_dir():
            continue
        # os.walk does not follow the symlinks synthgate/<folder>: each file is read once
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            files += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return files


def _bare_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}" for name in names if name.split(".")[0] in FOLDERS]
    return found


def test_no_code_imports_a_folder_outside_the_synthgate_namespace() -> None:
    files = _python_files()
    assert len(files) > 100, f"found only {len(files)} Python files under {ROOT}"
    bare = [hit for path in files for hit in _bare_imports(path)]
    assert bare == [], "import these as synthgate.<folder>:\n" + "\n".join(bare)


def test_every_folder_is_mapped_into_the_namespace_in_the_checkout() -> None:
    for folder in FOLDERS:
        link = ROOT / "synthgate" / folder
        assert link.is_symlink(), f"{link} should be a symlink to ../{folder}"
        assert link.resolve() == (ROOT / folder).resolve()


def test_the_wheel_installs_only_the_synthgate_namespace(tmp_path: Path) -> None:
    """Build the wheel from a copy of the sources (so no build/ lands in the checkout), install it
    without dependencies into a folder, and import from it away from the checkout."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in (*FOLDERS, "synthgate"):
        shutil.copytree(ROOT / folder, src / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("synthgate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"synthgate", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    for module in (
        "synthgate/models/codec.py",
        "synthgate/validation/contract.py",
        "synthgate/flows/cli.py",
        "synthgate/flows/demo/adult.parquet",
        "synthgate/flows/demo/adult.contract.yaml",
        *(f"synthgate/validation/templates/{t.name}" for t in (ROOT / "validation" / "templates").glob("*.j2")),
    ):
        assert module in names, f"{module} missing from the wheel"
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/entry_points.txt").decode()
    assert "synthgate = synthgate.flows.cli:main" in entry_points

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    # the report pages render from the installed templates (package data), away from the checkout
    probe = (
        "import synthgate.validation.contract as c, synthgate.flows.demo as d; "
        "from synthgate.validation.report import render_html; "
        "print(c.__file__); print(d.demo_contract()); "
        "page = render_html({'kind': 'public', 'table': 'a<b', 'run_id': 'r1'}); "
        "print('a&lt;b' in page and 'Unit of privacy' in page and 'a<b' not in page)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert Path(out[0]).is_relative_to(site), out
    assert Path(out[1]).is_relative_to(site) and Path(out[1]).is_file(), out
    assert out[2] == "True", out
