#!/bin/sh
# Regenerates the TEST-ONLY PKI used by src/ike/crypto/tests (never for real use).
# Validity: 100 years from generation; the tests pass their own "now".
set -e
cd "$(dirname "$0")"
D=36500
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
ec root-ca.key
openssl req -x509 -new -key root-ca.key -sha256 -days $D -subj "/O=spimux test/CN=spimux test root CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out root-ca.pem
ec other-ca.key
openssl req -x509 -new -key other-ca.key -sha256 -days $D -subj "/O=spimux test/CN=unrelated CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out other-ca.pem
ec inter-ca.key
openssl req -new -key inter-ca.key -subj "/O=spimux test/CN=spimux test intermediate CA" -out inter-ca.csr
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > ca.ext
openssl x509 -req -in inter-ca.csr -CA root-ca.pem -CAkey root-ca.key -CAcreateserial -sha256 -days $D -extfile ca.ext -out inter-ca.pem
ec ee-ecdsa.key
openssl req -new -key ee-ecdsa.key -subj "/O=spimux test/CN=gw.example.net" -out ee-ecdsa.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=DNS:gw.example.net,IP:198.51.100.1,email:ops@example.net\n' > ee-ecdsa.ext
openssl x509 -req -in ee-ecdsa.csr -CA inter-ca.pem -CAkey inter-ca.key -CAcreateserial -sha256 -days $D -extfile ee-ecdsa.ext -out ee-ecdsa.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ee-rsa.key
openssl req -new -key ee-rsa.key -subj "/O=spimux test/CN=client.example.net" -out ee-rsa.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,1.3.6.1.5.5.7.3.17\nsubjectAltName=DNS:client.example.net,IP:203.0.113.7\n' > ee-rsa.ext
openssl x509 -req -in ee-rsa.csr -CA root-ca.pem -CAkey root-ca.key -CAcreateserial -sha256 -days $D -extfile ee-rsa.ext -out ee-rsa.pem
# An end entity posing as a CA: signs a leaf, which must be refused.
ec rogue.key
openssl req -new -key rogue.key -subj "/O=spimux test/CN=rogue.example.net" -out rogue.csr
openssl x509 -req -in rogue.csr -CA ee-ecdsa.pem -CAkey ee-ecdsa.key -CAcreateserial -sha256 -days $D -out rogue.pem
rm -f *.csr *.ext *.srl
