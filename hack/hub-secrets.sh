#!/usr/bin/env bash
# Writes the files config/hub turns into Secrets: a fresh ECDSA CA for the
# embedded hub, an iothubowner policy key, and the service connection string
# the manager uses. Existing files are kept, so re-running changes nothing;
# delete config/hub/secrets/ to start over. The files hold secrets and are
# ignored by git.
#
#   hack/hub-secrets.sh [namespace]   (default twinsync-system)
set -euo pipefail

namespace="${1:-twinsync-system}"
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/config/hub/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

if [ ! -s "$dir/ca-key.pem" ] || [ ! -s "$dir/ca.pem" ]; then
	# The hub reads an ECDSA P-256 key in SEC1 form ("EC PRIVATE KEY").
	openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca-key.pem"
	openssl req -x509 -new -key "$dir/ca-key.pem" -out "$dir/ca.pem" -days 3650 \
		-subj "/O=twinsync/CN=twinsync hub CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
	chmod 644 "$dir/ca.pem"
fi

if [ ! -s "$dir/policy-keys.json" ]; then
	key="$(openssl rand -base64 32)"
	printf '{"iothubowner":{"primaryKey":"%s"}}\n' "$key" > "$dir/policy-keys.json"
	printf 'HostName=twinsync-hub.%s.svc;SharedAccessKeyName=iothubowner;SharedAccessKey=%s' \
		"$namespace" "$key" > "$dir/connectionString"
fi
echo "hub secrets in $dir"
