"""The README's Python examples run as written (and their assertions hold)."""
import os
import re
import subprocess
import sys

from conftest import ROOT


def _run_block(tmp_path, i: int):
    """Run the README's i-th ```python block in ``tmp_path``; returns the finished process."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert len(blocks) > i, "README.md lacks the python example"
    script = tmp_path / f"example{i}.py"
    script.write_text(blocks[i])
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def test_readme_python_example_runs(tmp_path):
    assert "synapses E->I, mean weight" in _run_block(tmp_path, 0).stdout


def test_readme_state_example_runs(tmp_path):
    """The second block (Network.record_state) prints the first sample times, the shape
    and the spike count, and saves state.npz."""
    r = _run_block(tmp_path, 1)
    assert r.stdout.strip() == "[0.5 1.  1.5] (200, 3) 200 spikes"
    assert (tmp_path / "out" / "state-example" / "state.npz").exists()
