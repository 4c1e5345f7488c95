#!/usr/bin/env bash
# Runs every fuzz target of the given modules for $FUZZTIME each.
set -euo pipefail
FUZZTIME=${FUZZTIME:-10s}
root=$(pwd)
for m in "$@"; do
	cd "$root/$m"
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
			echo "== fuzz $pkg $target ($FUZZTIME)"
			# On a loaded machine the fuzz coordinator sometimes times out
			# stopping a worker ("context deadline exceeded") without any
			# failing input: retry that once. A real failure writes its
			# input under testdata/fuzz and fails as usual.
			for attempt in 1 2; do
				if out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1); then
					echo "$out" | tail -1
					break
				fi
				echo "$out"
				if [ "$attempt" = 2 ] || ! grep -q 'context deadline exceeded' <<<"$out" || grep -q 'Failing input written' <<<"$out"; then
					exit 1
				fi
				echo "== retrying $target: the fuzz coordinator timed out, no failing input"
			done
		done
	done
done
