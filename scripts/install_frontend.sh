#!/usr/bin/env bash
# Unpacks the static web root of one comfyui-frontend-package release (the folder with index.html, from the
# wheel's comfyui_frontend_package/static) into DIR, without installing the package into any virtualenv, so that
# ComfyUI can serve it with `--front-end-root DIR` (the browser tests use it to run a second frontend).
# Usage: scripts/install_frontend.sh VERSION DIR [PYTHON]      (idempotent; PYTHON defaults to .venv/bin/python)
set -euo pipefail
version=${1:?frontend version, e.g. 1.58.1}; dir=${2:?target dir, e.g. .frontends/1.58.1}
python=${3:-${M3DDM_VENV:-$(dirname "$0")/../.venv}/bin/python}
[ -x "$python" ] || python=python3
marker="$dir/.comfyui-frontend-package-version"
if [ -f "$dir/index.html" ] && [ "$(cat "$marker" 2>/dev/null)" = "$version" ]; then
  echo "comfyui-frontend-package $version already at $dir"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download -q --no-deps --only-binary=:all: "comfyui-frontend-package==$version" -d "$tmp"
wheel=$(ls "$tmp"/comfyui_frontend_package-"$version"-*.whl)
"$python" - "$wheel" "$tmp/unpacked" <<'EOF'
import sys, zipfile
prefix = "comfyui_frontend_package/static/"
with zipfile.ZipFile(sys.argv[1]) as whl:
    names = [n for n in whl.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if prefix + "index.html" not in names:
        sys.exit(f"{sys.argv[1]} has no {prefix}index.html")
    for name in names:
        whl.extract(name, sys.argv[2])
EOF
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
mv "$tmp/unpacked/comfyui_frontend_package/static" "$dir"
echo "$version" > "$marker"
echo "comfyui-frontend-package $version unpacked to $dir"
