"""Running ``activator`` as a user does: a separate process, its JSON read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def activator(
    *args: str, cwd: Path | None = None, workspace_env: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m activator ARGS``; ACTIVATOR_WORKSPACE only when ``workspace_env``."""
    env = {k: v for k, v in os.environ.items() if k != "ACTIVATOR_WORKSPACE"}
    if workspace_env is not None:
        env["ACTIVATOR_WORKSPACE"] = str(workspace_env)
    return subprocess.run(
        [sys.executable, "-m", "activator", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The command's stdout as JSON: exactly one document, or this raises."""
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)
