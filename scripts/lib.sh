# Shared by scripts/test.sh and scripts/demo.sh. Source it; do not execute.
# The Debian 12 packages the project needs (build: C libraries; tests: peers and tools).
APT_PACKAGES=(pkg-config libsqlite3-dev sqlite3 liblua5.4-dev duktape-dev)
APT_TEST_PACKAGES=(strace wrk socat)

# install_packages NAME… : apt-get install what is missing (as root), or say what to install.
install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
