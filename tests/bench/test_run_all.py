"""``bench/run_all.py``: every ``*_bench.py`` found, run with the size flag, results and ratios merged."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import run_all  # noqa: E402

GOOD = textwrap.dedent(
    """
    import json, sys
    size = "quick" if "--quick" in sys.argv else "full" if "--full" in sys.argv else "default"
    print("a table line")
    print(json.dumps({"size": size, "ratio": 2.5, "ours_vs_peer": 1.5, "nested": {"x_ratio_y": 0.5}, "seconds": 3}))
    """
)
BROKEN = "import sys\nsys.stderr.write('no such flag --quick')\nsys.exit(2)\n"


def test_run_all_discovers_benches_passes_the_size_and_lists_every_ratio(tmp_path, capsys):
    (tmp_path / "good_bench.py").write_text(GOOD)
    (tmp_path / "broken_bench.py").write_text(BROKEN)
    (tmp_path / "helper.py").write_text("raise SystemExit('not a bench')\n")
    assert sorted(run_all.benches(tmp_path)) == ["broken", "good"]

    code = run_all.main(["--quick", "--json"], folder=tmp_path)
    merged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and merged["failed"] == ["broken"] and merged["size"] == "quick"
    assert merged["benches"]["good"]["size"] == "quick"
    assert merged["benches"]["broken"]["error"] == "exit 2"
    assert "no such flag" in merged["benches"]["broken"]["stderr"]
    assert merged["ratios"] == {"good.ratio": 2.5, "good.ours_vs_peer": 1.5, "good.nested.x_ratio_y": 0.5}

    assert run_all.main(["--full", "--json", "good"], folder=tmp_path) == 0
    assert json.loads(capsys.readouterr().out)["benches"]["good"]["size"] == "full"
