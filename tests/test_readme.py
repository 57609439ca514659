"""The README's "Write your own fusion" example runs as written."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_write_your_own_fusion_example_runs(capsys):
    text = README.read_text()
    section = text.split("## Write your own fusion", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    assert "scaled_add_relu" in capsys.readouterr().out
