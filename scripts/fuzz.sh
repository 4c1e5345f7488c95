#!/usr/bin/env bash
# Runs every fuzz target of the given modules for $FUZZTIME each, one
# after the other, and prints a line per target and a summary. It goes on
# after a failing target and exits non-zero at the end if any failed.
#
#   FUZZTIME      how long each target runs (default 10s)
#   FUZZPARALLEL  fuzzing workers per target (default: go test's, GOMAXPROCS);
#                 1 keeps a shared machine usable
#   FUZZMATCH     extended regexp: only targets whose name matches run
set -uo pipefail
FUZZTIME=${FUZZTIME:-10s}
FUZZPARALLEL=${FUZZPARALLEL:-}
FUZZMATCH=${FUZZMATCH:-.}
root=$(pwd)
parallel=()
if [ -n "$FUZZPARALLEL" ]; then
	parallel=(-parallel="$FUZZPARALLEL")
fi
summary=()
failed=0

# result prints the target's line: execs and new interesting inputs from
# the last progress line of go test's output.
result() {
	local status=$1 pkg=$2 target=$3 out=$4 progress execs interesting input line
	progress=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' <<<"$out" | tail -1)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$progress")
	interesting=$(sed -nE 's/.*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 (corpus \2)/p' <<<"$progress")
	input=$(sed -nE 's/.*Failing input written to (.*)/\1/p' <<<"$out" | head -1)
	line=$(printf '%-4s %-45s %-24s execs %-10s new interesting %s' "$status" "$pkg" "$target" "${execs:-?}" "${interesting:-?}")
	if [ -n "$input" ]; then
		line="$line; failing input $input"
	fi
	echo "$line"
	summary+=("$line")
}

for m in "$@"; do
	cd "$root/$m" || exit 1
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u | grep -E "$FUZZMATCH"); do
			echo "== fuzz $pkg $target ($FUZZTIME${FUZZPARALLEL:+, $FUZZPARALLEL workers})"
			# On a loaded machine the fuzz coordinator sometimes times out
			# stopping a worker ("context deadline exceeded") without any
			# failing input: retry that once. A real failure writes its
			# input under testdata/fuzz and fails as usual.
			for attempt in 1 2; do
				if out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "${parallel[@]}" "$pkg" 2>&1); then
					result ok "$pkg" "$target" "$out"
					break
				fi
				if [ "$attempt" = 1 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
					echo "== retrying $target: the fuzz coordinator timed out, no failing input"
					continue
				fi
				echo "$out"
				result FAIL "$pkg" "$target" "$out"
				failed=$((failed + 1))
				break
			done
		done
	done
done

echo "== fuzz summary ($FUZZTIME per target${FUZZPARALLEL:+, $FUZZPARALLEL workers})"
printf '%s\n' "${summary[@]}"
echo "${#summary[@]} targets, $failed failed"
[ "$failed" = 0 ]
