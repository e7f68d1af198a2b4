#!/usr/bin/env bash
# Makes what the manifests' Secrets hold, for a test cluster, with openssl: a
# self-signed CA, groupsvc's server certificate, the edges' client
# certificate(s), and API tokens. Production clusters would rather use
# cert-manager (see docs/security.md).
#
#   k8s/make-certs.sh OUT_DIR [EDGE_ID...]          # writes the files only
#   k8s/make-certs.sh --apply OUT_DIR [EDGE_ID...]  # and creates the Secrets in
#                                                   # namespace chat (kubectl)
#
# OUT_DIR gets one folder per Secret, named as the Secret, whose files are its
# keys (kubectl create secret generic NAME --from-file=OUT_DIR/NAME):
#   groupsvc-tls/        tls.crt tls.key (DNS groupsvc, groupsvc.chat.svc, ..., every
#                        shard *.groupsvc-shards, *.groupsvc-shards.chat.svc, ...,
#                        localhost, IP 127.0.0.1), ca.crt (signs edge certificates)
#   edge-tls/            tls.crt tls.key (DNS *.edge.chat: the edges' ids are
#                        POD_NAME.edge.chat), ca.crt (signs groupsvc's certificate)
#   groupsvc-api-tokens/ tokens (NAME SCOPES TOKEN lines: operator, reader)
# and, for each EDGE_ID given, edge-tls-EDGE_ID/ with a certificate for exactly
# that id (for edges run one by one, e.g. outside the cluster).
# The CA's key stays in OUT_DIR/ca.key: keep it, or delete it.
set -euo pipefail

apply=0
if [[ "${1:-}" == --apply ]]; then
  apply=1
  shift
fi
if (($# < 1)); then
  sed -n '2,22p' "$0" >&2
  exit 2
fi
out="$1"
shift
namespace="${CHAT_NAMESPACE:-chat}"
days="${CHAT_CERT_DAYS:-365}"
mkdir -p "$out"
umask 077

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
serial() { echo "0x$(openssl rand -hex 16)"; }

# The CA.
openssl req -x509 -new "${ec[@]}" -keyout "$out/ca.key" -out "$out/ca.crt" -days "$((days * 3))" \
  -subj "/CN=chat test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# leaf DIR CN USAGE SAN
leaf() {
  local dir="$1" cn="$2" usage="$3" san="$4"
  mkdir -p "$dir"
  openssl req -new "${ec[@]}" -keyout "$dir/tls.key" -out "$dir/tls.csr" -subj "/CN=$cn" 2>/dev/null
  openssl x509 -req -in "$dir/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -set_serial "$(serial)" \
    -days "$days" -out "$dir/tls.crt" -extfile <(printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=$usage" \
      "subjectAltName=$san") 2>/dev/null
  rm "$dir/tls.csr"
  cp "$out/ca.crt" "$dir/ca.crt"
}

svc="groupsvc"
leaf "$out/groupsvc-tls" "$svc" serverAuth \
  "DNS:$svc,DNS:$svc.$namespace,DNS:$svc.$namespace.svc,DNS:$svc.$namespace.svc.cluster.local,DNS:*.$svc-shards,DNS:*.$svc-shards.$namespace,DNS:*.$svc-shards.$namespace.svc,DNS:*.$svc-shards.$namespace.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
leaf "$out/edge-tls" "edge" clientAuth "DNS:*.edge.chat"
for id in "$@"; do
  leaf "$out/edge-tls-$id" "$id" clientAuth "DNS:$id"
done

mkdir -p "$out/groupsvc-api-tokens"
{
  echo "# NAME SCOPES TOKEN (scopes: read, send, admin). Remove a line to revoke it."
  echo "operator read,send,admin $(openssl rand -hex 32)"
  echo "reader read $(openssl rand -hex 32)"
} >"$out/groupsvc-api-tokens/tokens"

echo "make-certs: wrote $out (CA: $out/ca.crt)"
if ((apply)); then
  for secret in groupsvc-tls edge-tls groupsvc-api-tokens; do
    kubectl -n "$namespace" create secret generic "$secret" --from-file="$out/$secret" \
      --dry-run=client -o yaml | kubectl apply -f -
  done
fi
