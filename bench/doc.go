// Package bench compares sesh with the other Go session libraries on the
// same workloads, side by side in one run. The workloads are in package
// workload; this package holds the Go benchmarks
// (BenchmarkWorkload/<pair>/<workload>/{serial,parallel}), the lost-update
// test and the Redis round-trip counting tests. run.sh runs everything,
// end-to-end load with wrk included, and prints the results table; see
// README.md.
package bench
