"""Tests for reference_server/__init__.py: importing the server leaves no file open at exit.

llama_cpp opens os.devnull twice on import and never closes it; whether the interpreter then reports
"ResourceWarning: unclosed file" at exit depends on teardown order (it did at the end of our own pytest
runs), so the test checks the cause: the exit handlers close both files.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import atexit
import reference_server
from llama_cpp import _utils
assert not _utils.outnull_file.closed
atexit._run_exitfuncs()
print(_utils.outnull_file.closed, _utils.errnull_file.closed)
"""


def test_llama_cpps_devnull_files_are_closed_at_exit() -> None:
    done = subprocess.run([sys.executable, "-X", "dev", "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
    assert "ResourceWarning" not in done.stderr
