# Shell helpers for the install scripts (sourced, not run).
# apt_install BIN:PKG[,PKG] ...  installs the Debian packages of each missing binary (root + apt), else says how.

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
  local missing=()
  for pair in "$@"; do
    local bin="${pair%%:*}" pkg="${pair##*:}"
    if ! command -v "$bin" >/dev/null 2>&1; then
      IFS=, read -ra pkgs <<<"$pkg"
      missing+=("${pkgs[@]}")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${missing[*]} -- install them (Debian: apt-get install ${missing[*]}) and run again" >&2
    exit 1
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
