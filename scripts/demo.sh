#!/usr/bin/env bash
# `npm run demo`: installs what is missing, builds, then runs scripts/demo.ts: Kubo,
# containerd and our daemon under a temporary root; build an image, ipfs-push it,
# rpull it by CID, run it lazily, print CID, timings and bytes fetched; clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh
[[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH
export PATH=$(go env GOPATH)/bin:$PATH
npm run --silent build

node dist/scripts/demo.js
