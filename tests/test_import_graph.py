"""The import graph of pipeline, export and host: no cycles, nothing runs back up, one-way layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from import_graph import LAYERS, cycles, layer_violations, package_edges, read_graph, upward_imports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    return read_graph(ROOT)


def test_the_graph_sees_the_packages(graph):
    assert {"pipeline.cli", "export.cli", "host.cli"} <= set(graph.modules)
    assert "pipeline.signal.spec" in graph.edges["pipeline.signal.preprocess"]


def test_no_module_cycles(graph):
    assert cycles(graph.edges) == []


def test_no_import_runs_back_up(graph):
    assert upward_imports(graph) == []


@pytest.mark.parametrize("top", LAYERS)
def test_no_subpackage_cycles(graph, top):
    assert cycles(package_edges(graph, top)) == []


def test_layers_point_one_way(graph):
    assert layer_violations(graph) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_rules_catch_what_they_forbid(tmp_path):
    _write(tmp_path, {
        "pipeline/__init__.py": "",
        "pipeline/cli.py": "from pipeline.a.x import f\n",
        "pipeline/a/__init__.py": "",
        "pipeline/a/x.py": "from .y import g\n\ndef f():\n    from pipeline.cli import main\n",
        "pipeline/a/y.py": "from pipeline.b import z\n",
        "pipeline/b/__init__.py": "",
        "pipeline/b/z.py": "from pipeline.a import x\nfrom pipeline import __version__\n",
        "export/__init__.py": "",
        "export/e.py": "import host.h\n",
        "host/__init__.py": "",
        "host/h.py": "from export import e\nfrom pipeline.a.y import g\n",
    })
    g = read_graph(tmp_path)
    assert ["pipeline.a.x", "pipeline.a.y", "pipeline.b.z", "pipeline.cli"] in cycles(g.edges)
    up = upward_imports(g)
    assert any(u.endswith("x.py:4 -> pipeline.cli") for u in up)
    assert any(u.endswith("z.py:2 -> pipeline") for u in up)
    assert len(up) == 2
    assert cycles(package_edges(g, "pipeline")) == [["pipeline.a", "pipeline.b"]]
    assert [v.rsplit(" -> ", 1)[1] for v in layer_violations(g)] == ["host.h"]
