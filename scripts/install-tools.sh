#!/usr/bin/env bash
# Installs what stargz-ipfs, its tests, demo and benchmarks need on Debian 12, as root.
# Idempotent: what is already present at the pinned version is kept.
#   Debian: containerd (1.6) + runc, fuse3 (`fusermount`, the test harness's fallback for
#           detaching mounts), busybox-static (test images), jq, curl,
#           iproute2, debootstrap (a real Debian image for the distro e2e test), golang-go +
#           the estargz 0.12 Go sources (the reference eStargz tool).
#   Kubo:   the IPFS node, built from the Go module proxy (Debian does not package it).
#   containerd 2.2.9 (+ ctr, shim) and nerdctl 2.0.4 for the e2e compatibility tests, built
#           from the Go module proxy into $(go env GOPATH)/sgipfs-tools/<tool>-<version>/.
#   npm:    npm ci (better-sqlite3 compiles SQLite; see allowScripts in package.json).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBO_VERSION=0.42.0
CONTAINERD2_VERSION=2.2.9
NERDCTL_VERSION=2.0.4
APT_PACKAGES=(containerd runc fuse3 busybox-static jq curl iproute2 debootstrap golang-go golang-github-containerd-stargz-snapshotter-dev)

log() { printf '[install] %s\n' "$*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's golang-go (1.19, for the reference tool) must not shadow the toolchain Kubo needs.
[[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { log "Go is required to build Kubo (https://go.dev/dl/)"; exit 1; }
gobin=$(go env GOPATH)/bin
mkdir -p "$gobin"
have_kubo() { "$1" version 2>/dev/null | grep -qx "ipfs version $KUBO_VERSION"; }
if have_kubo "$gobin/ipfs"; then
  log "kubo $KUBO_VERSION present in $gobin"
elif command -v ipfs >/dev/null && have_kubo "$(command -v ipfs)"; then
  log "kubo $KUBO_VERSION present on PATH"
else
  # `go install …/cmd/ipfs@v0.42.0` is refused (exclude directives in kubo's go.mod): build in the module dir.
  log "building kubo $KUBO_VERSION from the Go module proxy (a few minutes on 2 cores)"
  start=$(date +%s)
  dir=$(go mod download -json "github.com/ipfs/kubo@v$KUBO_VERSION" | jq -r .Dir)
  (cd "$dir" && go build -trimpath -o "$gobin/ipfs" ./cmd/ipfs)
  log "kubo built in $(( $(date +%s) - start )) s"
fi

tools=$(go env GOPATH)/sgipfs-tools
ctd2="$tools/containerd-$CONTAINERD2_VERSION"
if [[ -x $ctd2/containerd && -x $ctd2/ctr && -x $ctd2/containerd-shim-runc-v2 ]]; then
  log "containerd $CONTAINERD2_VERSION present in $ctd2"
else
  log "building containerd $CONTAINERD2_VERSION from the Go module proxy (about 2 minutes on 2 cores)"
  start=$(date +%s)
  mkdir -p "$ctd2"
  GOBIN=$ctd2 go install -tags no_btrfs \
    "github.com/containerd/containerd/v2/cmd/containerd@v$CONTAINERD2_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v$CONTAINERD2_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@v$CONTAINERD2_VERSION"
  log "containerd $CONTAINERD2_VERSION built in $(( $(date +%s) - start )) s"
fi
nerdctl_dir="$tools/nerdctl-$NERDCTL_VERSION"
if [[ -x $nerdctl_dir/nerdctl ]]; then
  log "nerdctl $NERDCTL_VERSION present in $nerdctl_dir"
else
  # `go install` fails for nerdctl (the proxy refuses its version list); its module zip lacks the
  # test-only tigron module it requires: build a writable copy without that requirement.
  log "building nerdctl $NERDCTL_VERSION from the Go module proxy"
  start=$(date +%s)
  src=$(go mod download -json "github.com/containerd/nerdctl/v2@v$NERDCTL_VERSION" | jq -r .Dir)
  work=$(mktemp -d)
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  mkdir -p "$nerdctl_dir"
  (cd "$work" &&
    go mod edit -droprequire=github.com/containerd/nerdctl/mod/tigron -dropreplace=github.com/containerd/nerdctl/mod/tigron &&
    go build -trimpath -ldflags "-X github.com/containerd/nerdctl/v2/pkg/version.Version=v$NERDCTL_VERSION" -o "$nerdctl_dir/nerdctl" ./cmd/nerdctl)
  rm -rf "$work"
  log "nerdctl $NERDCTL_VERSION built in $(( $(date +%s) - start )) s"
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi
log "ready"
