# Sourced by scripts/demo and scripts/test: the system packages and the virtual environment they need.
# Usage: isotopes_setup EXTRAS [DEBIAN_PACKAGE...]
#   EXTRAS: the pip extras to install ("" or "test"); the Debian packages are installed with apt-get when root.

isotopes_setup() {
  local extras="$1" root
  shift
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv python3-pip)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "==> apt-get install ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "warning: missing system packages (${missing[*]}); install them with apt-get as root" >&2
    fi
  fi
  if [ ! -x "$root/.venv/bin/python" ]; then
    echo "==> creating $root/.venv"
    python3 -m venv "$root/.venv"
    "$root/.venv/bin/pip" install -q --upgrade pip
  fi
  echo "==> installing isotopes${extras:+ [$extras]} into .venv"
  local log="$root/.venv/install.log"
  if ! "$root/.venv/bin/pip" install --disable-pip-version-check -e "$root${extras:+[$extras]}" >"$log" 2>&1; then
    cat "$log" >&2
    echo "error: pip install failed (log above, also in $log)" >&2
    return 1
  fi
}
