"""The README's quick start, run as written: `make run` in one shell, the next block in another.

A fresh clone is stood for by a copy of the sources, the Makefile and the README, with a
`.venv` whose `tagloop`, `python` and `activate` are this test run's own (so `make` installs
nothing). The second shell is a fresh `bash` whose PATH does not hold `tagloop`: the README
must say how to reach it. Only the server's port is changed, to a free one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADDRESS = "127.0.0.1:8000"


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def fresh_clone(target: Path) -> Path:
    """The files `make run` and the quick start use, and a `.venv` that is already installed."""
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    shutil.copytree(ROOT / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = target / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, command in (
        ("python", f'exec "{sys.executable}" "$@"'),
        ("python3", f'exec "{sys.executable}" "$@"'),
        ("tagloop", f'exec "{sys.executable}" -m tagloop.cli "$@"'),
    ):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{command}\n")
        script.chmod(0o755)
    (bin_dir / "activate").write_text(
        f'VIRTUAL_ENV="{target / ".venv"}"\nexport VIRTUAL_ENV\nPATH="$VIRTUAL_ENV/bin:$PATH"\nexport PATH\n'
    )
    (target / ".venv" / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    return target


def fresh_environment(clone: Path) -> dict[str, str]:
    """A new shell's environment: no TAGLOOP_* settings, no virtualenv, no `tagloop` on PATH, and
    not inside a `make` (under `make test` the variables of the outer make would make the inner
    one print "Entering directory" lines)."""
    tagloop_dirs = {str(Path(sys.executable).parent)}
    path = [part for part in os.environ.get("PATH", "").split(os.pathsep) if part not in tagloop_dirs]
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TAGLOOP_", "VIRTUAL_ENV", "PYTHON", "MAKE", "MFLAGS"))
    }
    environment["PATH"] = os.pathsep.join(path)
    environment["PYTHONPATH"] = str(clone / "src")  # the clone's sources, as its editable install
    return environment


def test_the_quick_start_runs_as_written(tmp_path, free_port):
    first, second = shell_blocks((ROOT / "README.md").read_text())[:2]
    assert "make run" in first.splitlines()[0]
    clone = fresh_clone(tmp_path)
    environment = fresh_environment(clone)
    assert shutil.which("tagloop", path=environment["PATH"]) is None  # the first-hour trap
    port = free_port()
    planned = subprocess.run(
        ["make", "-n", "run", f"PORT={port}"], cwd=clone, env=environment, capture_output=True, text=True
    )
    assert planned.stdout.splitlines() == [f".venv/bin/tagloop serve --demo --host 127.0.0.1 --port {port}"]

    server = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=clone,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # make and the server it starts: one process group to stop
    )
    try:
        deadline = time.monotonic() + 300  # a bound on start-up, not a timing check
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        assert DEFAULT_ADDRESS in second
        shell = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", second.replace(DEFAULT_ADDRESS, f"127.0.0.1:{port}")],
            cwd=clone,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert shell.returncode == 0, shell.stderr
    assert "Traceback" not in shell.stderr and "error:" not in shell.stderr
    lines = shell.stdout.splitlines()
    assert lines[0].startswith("NETWORK:")  # "my VPN drops every ten minutes"
    assert "per label" in shell.stdout and "confusion matrix" in shell.stdout
    assert "trained tickets v1: 6 labels" in shell.stdout
    assert lines[-1].startswith('{"model_version":"v1","endpoint":"service-desk","classes":[{"name":"ACCESS"')
