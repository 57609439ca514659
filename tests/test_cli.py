"""The ttfuse command: scan prints the report (and JSON), graph draws before/after."""
import json
import shutil
import subprocess
import sys

import pytest
import ttnn

from fusion.cli import CLIError, main, parse_input

MOE = "examples/gpt_oss_moe.py:GptOssMoEDecode"


def test_input_parsing():
    s = parse_input("1x1x32x2880:fp32:rm:l1")
    assert s.shape == (1, 1, 32, 2880) and s.dtype == ttnn.float32 and s.layout == ttnn.ROW_MAJOR_LAYOUT
    assert s.memory_config == ttnn.L1_MEMORY_CONFIG
    assert parse_input("1,32").shape == (1, 32) and parse_input("8") == 8 and parse_input("none") is None
    with pytest.raises(CLIError, match="unknown dtype"):
        parse_input("1x32:int7")


def test_scan_prints_the_report_and_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["scan", MOE, "--input", "1x1x32x2880", "--input", "4x1x32x2880", "--json", str(out)]) == 0
    assert "prepare_expert_weights [seed_chain]" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["rewrites"][0]["saved_dispatches"] == 4


def test_graph_writes_dot_and_draws_when_graphviz_is_there(tmp_path):
    dot = tmp_path / "g.dot"
    assert main(["graph", MOE, "--input", "1x1x32x2880", "--input", "4x1x32x2880", "--out", str(dot)]) == 0
    text = dot.read_text()
    assert "[prepare_expert_weights]" in text and "fillcolor" in text and "before" in text
    if shutil.which("dot"):
        svg = tmp_path / "g.svg"
        assert main(["graph", MOE, "--input", "1x1x32x2880", "--input", "4x1x32x2880", "--out", str(svg)]) == 0
        assert svg.read_text().lstrip().startswith("<?xml")


def test_bad_target_is_one_line_not_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "fusion.cli", "scan", "examples/gpt_oss_moe.py:Nope", "--input", "1x32"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "has no attribute 'Nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_number_of_inputs_is_reported():
    proc = subprocess.run([sys.executable, "-m", "fusion.cli", "scan", MOE, "--input", "1x1x32x2880"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "InputError" in proc.stderr


def test_bad_input_and_output_paths_are_one_line_with_exit_2(tmp_path, capsys):
    with pytest.raises(CLIError, match="expected SHAPE"):
        parse_input(".")
    assert parse_input(".5") == 0.5 and parse_input("-2.") == -2.0
    assert main(["scan", MOE, "--input", ".", "--input", "4x1x32x2880"]) == 2
    assert "expected SHAPE" in capsys.readouterr().err
    missing = tmp_path / "missing_dir" / "x.json"
    assert main(["scan", MOE, "--input", "1x1x32x2880", "--input", "4x1x32x2880", "--json", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert main(["graph", MOE, "--input", "1x1x32x2880", "--input", "4x1x32x2880", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
