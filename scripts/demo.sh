#!/usr/bin/env bash
# `npm run demo`: installs what is missing, starts a throwaway Kubo node and the
# stargz-ipfs-grpc daemon (config.example.toml) under a temporary root, shows that both
# answer, and cleans up. Later milestones extend this to push → rpull → run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh
[[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH
export PATH=$(go env GOPATH)/bin:$PATH
npm run --silent build

tmp=$(mktemp -d /tmp/sgipfs-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

export IPFS_PATH=$tmp/ipfs
ipfs init --profile test --empty-repo >/dev/null
ipfs daemon --offline >"$tmp/ipfs.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s $IPFS_PATH/api ]] && grep -q 'Daemon is ready' "$tmp/ipfs.log" && break; sleep 0.1; done
echo "kubo: $(ipfs version) at $(cat "$IPFS_PATH/api")"

node dist/src/cli/daemon.js --config config.example.toml --root "$tmp/root" --address "$tmp/stargz.sock" --log-level debug \
  2>"$tmp/daemon.log" &
pids+=($!)
for _ in $(seq 100); do grep -q 'daemon started' "$tmp/daemon.log" && break; sleep 0.1; done
echo "daemon log:"
cat "$tmp/daemon.log"
kill -TERM "${pids[1]}"
wait "${pids[1]}" && echo "daemon stopped cleanly (exit 0)"
