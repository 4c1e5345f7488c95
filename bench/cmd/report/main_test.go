package main

import (
	"encoding/json"
	"testing"
)

// TestIsolation reads rows as cmd/memstat writes them: an isolated row is
// only unthrottled when it says so.
func TestIsolation(t *testing.T) {
	for _, tc := range []struct {
		line, want string
	}{
		{`{"sched":"normal","rt_runtime_us":950000}`, ""},
		{`{"sched":"normal"}`, ""},
		{`{"sched":"fifo","rt_runtime_us":-1}`, "isolated"},
		{`{"sched":"fifo","rt_runtime_us":950000}`, "isolated, throttled"},
		{`{"sched":"fifo"}`, "isolated, throttled"}, // written before the field, or where unknown
	} {
		var m memRow
		if err := json.Unmarshal([]byte(tc.line), &m); err != nil {
			t.Fatal(err)
		}
		if got := m.isolation(); got != tc.want {
			t.Errorf("%s: isolation() = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestSweepVerdict(t *testing.T) {
	control := func(ratio float64) latency { return latency{Loads: 100, P99: ratio} }
	for _, tc := range []struct {
		name string
		m    memRow
		want string
	}{
		{"met", memRow{P99Ratio: 1.9, Burn: control(5), BurnP99Ratio: 5}, "**met**"},
		{"met at the bound", memRow{P99Ratio: 2}, "**met**"},
		{"over, control under", memRow{P99Ratio: 2.5, Burn: control(1), BurnP99Ratio: 1}, "**not met**"},
		{"over, control over", memRow{P99Ratio: 2.5, Burn: control(3), BurnP99Ratio: 3}, "**not resolved** (the control is over 2× too)"},
		{"over, no control (scs)", memRow{P99Ratio: 9000}, "**not met**"},
	} {
		if got := tc.m.sweepVerdict(); got != tc.want {
			t.Errorf("%s: sweepVerdict() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
