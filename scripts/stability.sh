#!/usr/bin/env bash
# Runs `cargo test --locked` N times in a row (default 20) and reports every
# test that failed even once, with the runs it failed in. Exits 1 if any
# test failed (or a run failed without naming a test: a build error, a
# crashed test binary, a run that hit the time limit), 0 otherwise.
#
# usage: scripts/stability.sh [N] [ARGS...]
#   ARGS go to `cargo test` (e.g. `--test adversarial`, or `-- --include-ignored`)
#   STABILITY_TIMEOUT  time limit for one run, in seconds (default 900)
#
# The output of every run is kept in a temp directory (printed at the end)
# so a failure can be read in full.
set -u

n=${1:-20}
[ $# -gt 0 ] && shift
case $n in
  '' | *[!0-9]* | 0) echo "usage: $0 [N] [cargo test args...] (N >= 1)" >&2; exit 2 ;;
esac
limit=${STABILITY_TIMEOUT:-900}
cd "$(dirname "$0")/.." || exit 2
logs=$(mktemp -d "${TMPDIR:-/tmp}/ocwrap-stability.XXXXXX")

# test name -> space-separated run numbers it failed in
declare -A failed_in=()
clean_runs=0
start=$SECONDS

# Prints `BINARY::TEST` for every failed test in a libtest log. The binary
# comes from cargo's "Running tests/x.rs (target/...)" / "Doc-tests x" line
# that precedes its results.
failed_tests() {
  awk '
    /^ *Running / {
      bin = ($2 == "unittests") ? $3 : $2
      sub(/^(tests|benches|examples)\//, "", bin); sub(/\.rs$/, "", bin)
      next
    }
    /^ *Doc-tests / { bin = "doc:" $2; next }
    /^test .* \.\.\. FAILED$/ {
      name = $0; sub(/^test /, "", name); sub(/ \.\.\. FAILED$/, "", name)
      print bin "::" name
    }
  ' "$1" | sort -u
}

for i in $(seq 1 "$n"); do
  log="$logs/run-$i.log"
  run_start=$SECONDS
  timeout --kill-after=30 "$limit" cargo test --locked --color never "$@" >"$log" 2>&1
  rc=$?
  tests=$(failed_tests "$log")
  if [ -n "$tests" ]; then
    while IFS= read -r t; do
      failed_in[$t]="${failed_in[$t]:-}$i "
    done <<<"$tests"
  elif [ "$rc" -ne 0 ]; then
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      what="(run hit the ${limit}s limit)"
    else
      what="(cargo test exited $rc without naming a failed test)"
    fi
    failed_in[$what]="${failed_in[$what]:-}$i "
  fi
  if [ -z "$tests" ] && [ "$rc" -eq 0 ]; then
    clean_runs=$((clean_runs + 1))
    status=ok
  else
    status="FAILED (rc $rc)"
  fi
  printf 'run %d/%d: %s in %ds%s\n' "$i" "$n" "$status" $((SECONDS - run_start)) \
    "$( [ -n "$tests" ] && printf ': %s' "$(paste -sd, - <<<"$tests" | sed 's/,/, /g')")"
done

echo
echo "$n runs in $((SECONDS - start))s: $clean_runs without any failure"
if [ ${#failed_in[@]} -eq 0 ]; then
  echo "no test failed"
  rm -rf "$logs"
  exit 0
fi
echo "failed at least once:"
while IFS= read -r t; do
  runs=${failed_in[$t]}
  count=$(echo $runs | wc -w)
  printf '  %s: %d/%d (runs %s)\n' "$t" "$count" "$n" "$(echo $runs | tr ' ' ',')"
done < <(printf '%s\n' "${!failed_in[@]}" | sort)
echo "logs: $logs"
exit 1
