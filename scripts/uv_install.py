"""``uv pip install ARGS`` into this interpreter's virtualenv, from the sources pip is configured with here.

uv installs the same releases as pip several times faster (torch with its CUDA libraries: about 10 s instead of
60 on the 2-core machines). It does not read pip's configuration, so pip's (``pip config list``: the environment's
PIP_* variables over the config files) becomes uv's options: find-links, index URLs, constraints, trusted hosts,
no-index and the certificate bundle. Indexes are searched as pip searches them (the best match of all), modules
are compiled to bytecode as pip does (else every first import compiles them: each Ray worker and ComfyUI server the
tests start, all at once), and nothing is cached (a fresh machine would keep a second copy of torch's gigabytes).
Usage: VENV/bin/python scripts/uv_install.py ARGS...   (ARGS as for pip install)
"""
import os
import subprocess
import sys
from pathlib import Path

OPTIONS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
           "constraint": "--constraint", "trusted-host": "--allow-insecure-host"}
SCOPES = (":env:", "install", "global")  # pip's precedence for install, highest first


def pip_config() -> dict[str, str]:
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    found: dict[tuple[str, str], str] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        scope, _, name = key.partition(".")
        found[scope, name] = value.strip().strip("'\"")
    names = {name for _, name in found}
    return {name: next(found[s, name] for s in SCOPES if (s, name) in found)
            for name in names if any((s, name) in found for s in SCOPES)}


def main(args: list[str]) -> int:
    config = pip_config()
    options = [part for name, flag in OPTIONS.items() for value in config.get(name, "").split()
               for part in (flag, value)]
    if config.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        options.append("--no-index")
    env = dict(os.environ)
    if config.get("cert") and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = config["cert"]
    uv = Path(sys.executable).with_name("uv")
    command = [str(uv), "pip", "install", "--quiet", "--no-cache", "--compile-bytecode", "--python", sys.executable,
               "--index-strategy", "unsafe-best-match", *options, *args]
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
