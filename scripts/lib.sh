# Shared by scripts/test.sh and scripts/demo.sh. Source it; do not execute.
# The Debian 12 packages the project needs (build: C libraries; tests: peers and tools).
APT_PACKAGES=(pkg-config libsqlite3-dev sqlite3 liblua5.4-dev duktape-dev libmodbus-dev libmosquitto-dev libcurl4-openssl-dev libcoap3-dev)
APT_TEST_PACKAGES=(strace gdb wrk gcc make socat openssl python3 python3-pip mosquitto mosquitto-clients rabbitmq-server libcoap3-bin systemd prometheus chromium chromium-driver influxdb postgresql redis-server nginx libnginx-mod-stream)

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

# PyPI test peers, pinned to the versions the tests were last run with (a new release must not change a CI
# run): pymodbus (simulated Modbus devices; 3.16.1 runs on Python 3.11), pyserial (its RTU server), paho-mqtt,
# aiosmtpd (SMTP sink), websockets, aiocoap, schemathesis (the management and device APIs against openapi.yaml).
PIP_TEST_PACKAGES=("pymodbus:pymodbus==3.16.1" "serial:pyserial==3.5" "paho.mqtt:paho-mqtt==2.2.0" "aiosmtpd:aiosmtpd==1.4.6" "websockets:websockets==17.4" "aiocoap:aiocoap==0.4.17" "schemathesis:schemathesis==4.32.5" "standardwebhooks:standardwebhooks==1.3.0" "selenium:selenium==4.51.0")

# install_pip_packages: pip install the test peers (PIP_TEST_PACKAGES, "module:requirement" pairs) whose module
# python3 cannot import yet.
install_pip_packages() {
    local missing=()
    for pair in "${PIP_TEST_PACKAGES[@]}"; do
        local module=${pair%%:*} spec=${pair#*:}
        python3 -c "import $module" 2>/dev/null || missing+=("$spec")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing (pip): ${missing[*]}"
    python3 -m pip install --quiet "${missing[@]}" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "${missing[@]}"
}
