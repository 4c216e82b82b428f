# Sourced by scripts/up and scripts/test: makes .venv with what OneStack needs.
# Works on a fresh Debian machine as root with only Python 3.11; idempotent and
# quick when nothing changed (a stamp of pyproject.toml and the apt list).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
EXTRAS="${ONESTACK_EXTRAS:-}"

apt_install() {
    # Debian packages the project needs (scripts/apt-packages.txt), if missing.
    local missing=()
    while read -r pkg; do
        [ -n "$pkg" ] && [ "${pkg:0:1}" != "#" ] || continue
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done < scripts/apt-packages.txt
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "onestack: please install: ${missing[*]} (needs root)" >&2
            return 0
        fi
        echo "installing Debian packages: ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

if command -v dpkg-query >/dev/null 2>&1; then
    apt_install
fi

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv 2>/dev/null || {
        rm -rf .venv
        echo "onestack: python3 -m venv failed; is python3-venv installed?" >&2
        exit 1
    }
fi

stamp=".venv/.onestack-${EXTRAS:-base}"
want="$(cat pyproject.toml scripts/apt-packages.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing Python packages into .venv ..." >&2
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    spec="."
    [ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
    .venv/bin/python -m pip install -q -e "$spec" 2>&1 | grep -v -e "^WARNING: Location" -e "^$" >&2 || true
    .venv/bin/python -c "import onestack" || { echo "onestack: install failed" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
