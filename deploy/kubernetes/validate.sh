#!/usr/bin/env bash
# Validates every Kubernetes manifest here against the API schemas of Kubernetes 1.29 (the
# oldest release the Deployment targets: gRPC probes are GA from 1.27), strictly: an unknown
# or misspelt field is an error. The validator is kubernetes-validate from PyPI, pinned,
# installed once into a virtualenv under target/ (its schemas ship in the package; nothing
# else is fetched). kustomization.yaml is kustomize's own format, not a Kubernetes resource.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${AVOCET_VALIDATOR_VENV:-$here/../../target/kubernetes-validate}"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi
cd "$here"
manifests=()
for f in *.yaml; do
  [ "$f" = kustomization.yaml ] || manifests+=("$f")
done
"$venv/bin/kubernetes-validate" --strict --quiet -k 1.29 "${manifests[@]}"
echo "deploy/kubernetes: ${#manifests[@]} manifests valid for Kubernetes 1.29"
