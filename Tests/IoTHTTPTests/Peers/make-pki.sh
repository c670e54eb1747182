#!/bin/sh
# Makes a test PKI in $1 with openssl: a device CA, a server certificate for 127.0.0.1, device certificates
# (valid, expired, from another CA, unknown) and prints each device certificate's SHA-256 fingerprint and
# RFC 2253 subject as openssl sees them:  CERT <name> <fingerprint> <subject>
set -eu
dir=$1
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # name subject
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 -subj "$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    mkdir -p "$1.db"
    : > "$1.db/index.txt"
    echo 1000 > "$1.db/serial"
    cat > "$1.cnf" <<CNF
[ ca ]
default_ca = this
[ this ]
database = $1.db/index.txt
new_certs_dir = $1.db
serial = $1.db/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
[ any ]
organizationName = optional
commonName = supplied
[ client ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[ server ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
CNF
}
issue() {  # ca name subject extensions startdate enddate
    key "$2.key"
    openssl req -new -key "$2.key" -out "$2.csr" -subj "$3" 2>/dev/null
    openssl ca -batch -notext -config "$1.cnf" -cert "$1.pem" -keyfile "$1.key" -extensions "$4" \
        -startdate "$5" -enddate "$6" -in "$2.csr" -out "$2.pem" 2>/dev/null
    if [ "$4" = client ]; then
        fp=$(openssl x509 -in "$2.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
        subject=$(openssl x509 -in "$2.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
        echo "CERT $2 $fp $subject"
    fi
}
ca ca "/O=Acme/CN=Acme Device CA"
ca other "/O=Elsewhere/CN=Other CA"
issue ca server "/O=Acme/CN=iotd" server 20200101000000Z 20991231000000Z
issue ca device1 "/O=Acme/CN=t-1" client 20200101000000Z 20991231000000Z
issue ca device2 "/O=Acme/CN=t-2, line \"B\"" client 20200101000000Z 20991231000000Z
issue ca expired "/O=Acme/CN=t-1" client 20200101000000Z 20200102000000Z
issue other rogue "/O=Acme/CN=t-2, line \"B\"" client 20200101000000Z 20991231000000Z
issue ca unknown "/O=Acme/CN=t-9" client 20200101000000Z 20991231000000Z
echo DONE
