#!/usr/bin/env bash
# make test-matrix: the demo tests (make test-demos) against the control plane
# of each Kubernetes version given, one after another, then a table of
# package x version. The logs stay in .localcluster-matrix/<version>.log.
# Exit status: 0 when every package passed on every version.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=.localcluster-matrix
mkdir -p "$logs"
# Every version uses the same ports: a control plane left running (make
# cluster-up) would make the others fail to start.
for bin in bin/localcluster bin/localcluster-1.*; do
  [ -x "$bin" ] || continue
  v=${bin#bin/localcluster}; v=${v#-}
  state=.localcluster${v:+-$v}
  if "$bin" -dir "$state" status 2>/dev/null | grep 'kube-apiserver' >/dev/null; then
    echo "test-matrix: a control plane is running in $state; stop it first: make cluster-down${v:+ K8S=$v}" >&2
    exit 1
  fi
done
declare -A build_s test_s
for v in "$@"; do
  log=$logs/$v.log
  echo "== Kubernetes $v: build (make localcluster kubectl K8S=$v), then make test-demos K8S=$v; log: $log"
  start=$SECONDS
  # The build's progress lines go to the terminal as well as to the log.
  make --no-print-directory localcluster kubectl K8S="$v" 2>&1 | tee "$log"
  built=${PIPESTATUS[0]}
  build_s[$v]=$((SECONDS - start))
  if [ "$built" != 0 ]; then
    echo "   the build of $v failed; its tests are not run"
    test_s[$v]=0
    continue
  fi
  start=$SECONDS
  make --no-print-directory test-demos K8S="$v" >> "$log" 2>&1
  echo "   make test-demos K8S=$v: exit $? after $((SECONDS - start))s"
  test_s[$v]=$((SECONDS - start))
done

# go test prints one line per package: "ok  <pkg> <time>" or "FAIL <pkg> ...".
pkgs=$(go list ./... | grep -v /internal/)
status=0
echo
printf '%-36s' "package \\ Kubernetes"
for v in "$@"; do printf ' %-10s' "$v"; done
echo
for p in $pkgs; do
  label=${p#client-go-demo/}
  [ "$p" = client-go-demo ] && label="(root) README, RBAC"
  printf '%-36s' "$label"
  for v in "$@"; do
    r=$(grep -E "^(ok|FAIL)[[:space:]]+$p([[:space:]]|$)" "$logs/$v.log" | awk '{print $1}' | tail -1)
    [ -n "$r" ] || r=none
    [ "$r" = ok ] || status=1
    printf ' %-10s' "$r"
  done
  echo
done
printf '%-36s' "build, test (s)"
for v in "$@"; do printf ' %-10s' "${build_s[$v]},${test_s[$v]}"; done
echo
for v in "$@"; do
  if grep -q -- '--- FAIL' "$logs/$v.log"; then
    echo; echo "failed on $v:"; grep -- '--- FAIL' "$logs/$v.log" | sed 's/^/  /'
  fi
done
echo "(run on $(date -u +%Y-%m-%d), $(nproc) cores; logs in $logs/)"
exit $status
