# Shared by scripts/test.sh and scripts/demo.sh. Source it; do not execute.
# The Debian 12 packages the project needs (build: C libraries; tests: peers and tools).
APT_PACKAGES=(pkg-config libsqlite3-dev sqlite3 liblua5.4-dev duktape-dev libmodbus-dev)
APT_TEST_PACKAGES=(strace wrk gcc socat python3-pip)

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

# PyPI test peers: pymodbus (simulated Modbus devices; 3.16.1 runs on Python 3.11) and pyserial (its RTU
# server).
PIP_TEST_PACKAGES=(pymodbus==3.16.1 pyserial==3.5)

# install_pip_packages: pip install the test peers that python3 cannot import yet.
install_pip_packages() {
    if python3 -c 'import pymodbus, serial, sys; sys.exit(0 if pymodbus.__version__ == "3.16.1" else 1)' 2>/dev/null; then
        return 0
    fi
    echo "installing (pip): ${PIP_TEST_PACKAGES[*]}"
    python3 -m pip install --quiet "${PIP_TEST_PACKAGES[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "${PIP_TEST_PACKAGES[@]}"
}
