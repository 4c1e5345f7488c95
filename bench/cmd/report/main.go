// Command report reads the results that run.sh collected in a directory
// and prints them as markdown: one table with every pair and workload
// (end-to-end requests per second and their ratios to bare net/http and
// between sesh and its peers, the Go benchmarks' medians and ratios, lost
// updates and Redis round trips), the memory store measurements, and the
// targets of the performance issue with the measured ratios.
//
//	report -dir results/20260101-120000
//
// Files read (each optional): meta.json, wrk.jsonl, gobench.txt,
// lostupdate.jsonl, memstat.jsonl, roundtrips.txt, instr.jsonl.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/seshgo/sesh/bench/workload"
)

var dir = flag.String("dir", ".", "results directory")

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("report: ")
	r := &report{
		wrk:   map[key][]float64{},
		werr:  map[key]int{},
		bench: map[bkey][]benchLine{},
		lost:  map[string][]lostRow{},
		trips: map[key]string{},
		instr: map[key]float64{},
	}
	r.readMeta()
	r.readWrk()
	r.readBench()
	r.readLost()
	r.readMem()
	r.readTrips()
	r.readInstr()
	r.print()
}

type key struct{ pair, wl string }

type bkey struct{ pair, wl, mode string }

type benchLine struct{ ns, bytes, allocs float64 }

type lostRow struct {
	Pair     string         `json:"pair"`
	Path     string         `json:"path"`
	Sent     int            `json:"sent"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Failures map[string]int `json:"failures"`
	Final    int            `json:"final"`
	Lost     int            `json:"lost"`
}

type latency struct {
	Loads int     `json:"loads"`
	P50   float64 `json:"p50_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

type memRow struct {
	Mode            string  `json:"mode"`
	Lib             string  `json:"lib"`
	Sessions        int     `json:"sessions"`
	BytesPerSession float64 `json:"bytes_per_session"`
	RecordBytes     int     `json:"record_bytes"`
	Overhead        float64 `json:"overhead"`
	Expired         int     `json:"expired"`
	Live            int     `json:"live"`
	PaceUs          float64 `json:"pace_us"`
	Sched           string  `json:"sched"`         // "fifo": run under chrt --fifo, isolated
	RTRuntimeUs     *int64  `json:"rt_runtime_us"` // -1: real-time throttling off
	Reps            int     `json:"reps"`
	Removed         int     `json:"removed"`
	SweepMs         float64 `json:"sweep_ms"`
	Without         latency `json:"without"`
	During          latency `json:"during"`
	P99Ratio        float64 `json:"p99_ratio"`
	WithoutService  latency `json:"without_service"`
	DuringService   latency `json:"during_service"`
	ServiceP99Ratio float64 `json:"service_p99_ratio"`
	// The control of a sesh sweep: the same windows, spent spinning.
	Burn                latency `json:"burn"`
	BurnService         latency `json:"burn_service"`
	BurnP99Ratio        float64 `json:"burn_p99_ratio"`
	BurnServiceP99Ratio float64 `json:"burn_service_p99_ratio"`
}

// isolated says whether the measurement ran under SCHED_FIFO.
func (m memRow) isolated() bool { return m.Sched == "fifo" }

// isolation names how a row ran: "" (as it was), "isolated", or
// "isolated, throttled" when the kernel's real-time throttling was on (or
// not known), which stops a spinning loader for 50 ms every second.
func (m memRow) isolation() string {
	switch {
	case !m.isolated():
		return ""
	case m.RTRuntimeUs != nil && *m.RTRuntimeUs == -1:
		return "isolated"
	}
	return "isolated, throttled"
}

// sweepVerdict judges a sweep row against its target (load p99 during
// the sweep at most 2× without). The control does no store work: when it
// is over the target too, the machine's noise is larger than what the
// row could show, and the row is not resolved rather than not met.
func (m memRow) sweepVerdict() string {
	switch {
	case m.P99Ratio <= 2:
		return "**met**"
	case m.Burn.Loads > 0 && m.BurnP99Ratio > 2:
		return "**not resolved** (the control is over 2× too)"
	}
	return "**not met**"
}

type report struct {
	meta    map[string]any
	wrk     map[key][]float64 // req/s per round, in round order
	werr    map[key]int       // failed requests (non-2xx, socket errors)
	bench   map[bkey][]benchLine
	lost    map[string][]lostRow
	mem     []memRow
	trips   map[key]string
	tripsOK string
	instr   map[key]float64 // instructions per request (callgrind)
}

func open(name string) (*os.File, bool) {
	f, err := os.Open(filepath.Join(*dir, name))
	if err != nil {
		return nil, false
	}
	return f, true
}

func jsonLines(name string, each func([]byte) error) {
	f, ok := open(name)
	if !ok {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if err := each([]byte(line)); err != nil {
			log.Printf("%s: %v: %s", name, err, line)
		}
	}
}

func (r *report) readMeta() {
	b, err := os.ReadFile(filepath.Join(*dir, "meta.json"))
	if err == nil {
		json.Unmarshal(b, &r.meta)
	}
}

func (r *report) readWrk() {
	jsonLines("wrk.jsonl", func(b []byte) error {
		var v struct {
			Pair     string  `json:"pair"`
			Workload string  `json:"workload"`
			RPS      float64 `json:"rps"`
			C        int     `json:"err_connect"`
			R        int     `json:"err_read"`
			W        int     `json:"err_write"`
			S        int     `json:"err_status"`
			T        int     `json:"err_timeout"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		k := key{v.Pair, v.Workload}
		r.wrk[k] = append(r.wrk[k], v.RPS)
		r.werr[k] += v.C + v.R + v.W + v.S + v.T
		return nil
	})
}

var benchRE = regexp.MustCompile(`^BenchmarkWorkload/([^/]+)/([^/]+)/(serial|parallel)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op\s+([\d.]+) allocs/op)?`)

func (r *report) readBench() {
	f, ok := open("gobench.txt")
	if !ok {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[4], 64)
		by, _ := strconv.ParseFloat(m[5], 64)
		al, _ := strconv.ParseFloat(m[6], 64)
		k := bkey{m[1], m[2], m[3]}
		r.bench[k] = append(r.bench[k], benchLine{ns, by, al})
	}
}

func (r *report) readLost() {
	jsonLines("lostupdate.jsonl", func(b []byte) error {
		var v lostRow
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		r.lost[v.Pair] = append(r.lost[v.Pair], v)
		return nil
	})
}

func (r *report) readMem() {
	jsonLines("memstat.jsonl", func(b []byte) error {
		var v memRow
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		r.mem = append(r.mem, v)
		return nil
	})
}

// Lines logged by TestRedisRoundTrips and TestRedisRoundTripsSCS.
var tripRE = regexp.MustCompile(`redis_roundtrip_test\.go:\d+: (scs /)?([a-z -]+): (\d+) round trips (.*), (\d+) writes`)

func (r *report) readTrips() {
	f, ok := open("roundtrips.txt")
	if !ok {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	names := map[string]string{"read": "read", "read-modify-write": "rmw", "new": "new", "rmw": "rmw"}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "--- PASS: TestRedisRoundTrips "):
			r.tripsOK = "pass"
		case strings.HasPrefix(line, "--- FAIL: TestRedisRoundTrips "):
			r.tripsOK = "FAIL"
		case strings.HasPrefix(line, "--- SKIP: TestRedisRoundTrips "):
			r.tripsOK = "skipped"
		}
		m := tripRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		wl, ok := names[m[2]]
		if !ok {
			continue
		}
		pair := workload.SeshRedis
		if m[1] != "" {
			pair = workload.SCSRedis
		}
		cmds := strings.NewReplacer("[[", "", "]]", "", "] [", ", ", "[", "", "]", "").Replace(m[4])
		r.trips[key{pair, wl}] = fmt.Sprintf("%s (%s)", m[3], strings.ToUpper(cmds))
	}
}

func (r *report) readInstr() {
	jsonLines("instr.jsonl", func(b []byte) error {
		var v struct {
			Pair     string  `json:"pair"`
			Workload string  `json:"workload"`
			Instr    float64 `json:"instr"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		r.instr[key{v.Pair, v.Workload}] = v.Instr
		return nil
	})
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *report) rps(pair, wl string) float64 { return median(r.wrk[key{pair, wl}]) }

// roundRatios returns a's requests per second over b's in each round in
// which both ran, formatted, and their median: each round runs every pair
// within a minute or so, so a ratio within one round is less exposed to
// the machine's slow drifts than a ratio of medians.
func (r *report) roundRatios(a, b, wl string) (string, float64) {
	x, y := r.wrk[key{a, wl}], r.wrk[key{b, wl}]
	n := min(len(x), len(y))
	if n < 2 {
		return "", math.NaN()
	}
	rs := make([]float64, n)
	parts := make([]string, n)
	for i := range n {
		rs[i] = x[i] / y[i]
		parts[i] = fmt.Sprintf("%.2f×", rs[i])
	}
	return strings.Join(parts, " / "), median(rs)
}

func (r *report) benchMed(pair, wl, mode string, f func(benchLine) float64) float64 {
	var v []float64
	for _, b := range r.bench[bkey{pair, wl, mode}] {
		v = append(v, f(b))
	}
	return median(v)
}

func ns(b benchLine) float64     { return b.ns }
func allocs(b benchLine) float64 { return b.allocs }
func bytes(b benchLine) float64  { return b.bytes }

// seshOf is the sesh pair a peer is compared with: sesh on Redis for the
// Redis peers, sesh on its memory store for the others.
func seshOf(pair string) string {
	if workload.NeedsRedis(pair) {
		return workload.SeshRedis
	}
	return workload.SeshMem
}

func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func thousands(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func (r *report) pairs() []string {
	var out []string
	for _, p := range workload.All {
		for _, wl := range workload.Workloads {
			if len(r.wrk[key{p, wl}]) > 0 || len(r.bench[bkey{p, wl, "serial"}]) > 0 {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func (r *report) lostCell(pair string) string {
	var parts []string
	for _, l := range r.lost[pair] {
		s := fmt.Sprintf("%d", l.Lost)
		if workload.IsSesh(pair) {
			if l.Path == "/incr" {
				s += " Exclusive"
			} else {
				s += " without"
			}
		}
		if l.Failed > 0 {
			s += fmt.Sprintf(" (%d failed)", l.Failed)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func (r *report) print() {
	fmt.Println("## Results")
	fmt.Println()
	if r.meta != nil {
		m := r.meta
		fmt.Printf("Run %v on %v (%v vCPU, %v), %v, niceness %v, Redis %v.", m["date"], m["machine"], m["cpus"], m["cpu"], m["go"], m["nice"], m["redis"])
		if len(r.wrk) > 0 {
			fmt.Printf(" End to end: wrk %v, %v round(s), every other one in reverse order; the table shows the median.", m["wrk"], m["rounds"])
		}
		if len(r.bench) > 0 {
			fmt.Printf(" Go benchmarks: median of %v runs of -benchtime %v, in process (httptest).", m["count"], m["benchtime"])
		}
		fmt.Printf(" Load average (and CPU pressure) before / after: %v / %v.\n\n", m["load_before"], m["load_after"])
	}
	fmt.Println("| workload | pair | e2e req/s | ÷ net/http | sesh ÷ this | Go ns/op serial | Go ns/op parallel | allocs/op | B/op | sesh ÷ this ns/op (ser/par) | sesh ÷ this allocs | lost of 200 | Redis round trips |")
	fmt.Println("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
	pairs := r.pairs()
	for _, wl := range workload.Workloads {
		base := r.rps(workload.NetHTTP, wl)
		for _, p := range pairs {
			rps := r.rps(p, wl)
			rounds := r.wrk[key{p, wl}]
			rpsCell := thousands(rps)
			if len(rounds) > 1 {
				var rs []string
				for _, v := range rounds {
					rs = append(rs, thousands(v))
				}
				rpsCell += " (" + strings.Join(rs, " / ") + ")"
			}
			if e := r.werr[key{p, wl}]; e > 0 {
				rpsCell += fmt.Sprintf(" **%d errors**", e)
			}
			ser := r.benchMed(p, wl, "serial", ns)
			par := r.benchMed(p, wl, "parallel", ns)
			al := r.benchMed(p, wl, "serial", allocs)
			by := r.benchMed(p, wl, "serial", bytes)
			vsRPS, vsNS, vsAllocs := "", "", ""
			if !workload.IsSesh(p) && p != workload.NetHTTP {
				s := seshOf(p)
				vsRPS = ratio(r.rps(s, wl), rps)
				vsNS = ratio(r.benchMed(s, wl, "serial", ns), ser) + " / " + ratio(r.benchMed(s, wl, "parallel", ns), par)
				vsAllocs = ratio(r.benchMed(s, wl, "serial", allocs), al)
			}
			lost := ""
			if wl == "rmw" {
				lost = r.lostCell(p)
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				wl, p, rpsCell, ratio(rps, base), vsRPS, thousands(ser), thousands(par), num(al), thousands(by),
				vsNS, vsAllocs, lost, r.trips[key{p, wl}])
		}
	}
	fmt.Println()
	fmt.Println("e2e: wrk against a loadserver process on 127.0.0.1, rmw and read round-robin over 1,000 pre-made sessions (net/http gets stand-in cookies of the same length), new with no cookie; each round in parentheses. \"sesh ÷ this\": sesh-redis for the Redis peers, sesh-memstore for the others (floor: net/http with only what any server-side session needs, a random ID in a cookie and a map under a mutex; floor-sealed: floor with its values sealed with AES-256-GCM under the SHA-256 of the ID; floor-design: floor-sealed with the rest of what sesh's design makes every session carry, i.e. its metadata, a versioned compare-and-set store with an expiry heap, deadlines checked on read, a key ID and purpose in the envelope); above 1× for req/s and below 1× for ns/op and allocs mean sesh is ahead. \"lost of 200\": increments lost of 200 parallel ones on one session (/incr; sesh with and without Manager.Exclusive). Redis round trips: per request, counted with a go-redis hook (TestRedisRoundTrips" + tripsNote(r.tripsOK) + ").")
	fmt.Println()
	r.printInstr()
	r.printMem()
	r.printTargets()
}

// printInstr prints the instruction counts: per request, and beyond what
// bare net/http's handler takes, which is what each pair's session work
// costs.
func (r *report) printInstr() {
	if len(r.instr) == 0 {
		return
	}
	tableHead("Instructions per request, in process (callgrind; serial Go benchmark, httptest):",
		"| workload | pair | instructions | beyond net/http | sesh's beyond ÷ this one's |", "|---|---|--:|--:|--:|")
	for _, wl := range workload.Workloads {
		base, okBase := r.instr[key{workload.NetHTTP, wl}]
		sesh, okSesh := r.instr[key{workload.SeshMem, wl}]
		for _, p := range workload.All {
			n, ok := r.instr[key{p, wl}]
			if !ok {
				continue
			}
			beyond, vs := "", ""
			if okBase && p != workload.NetHTTP {
				beyond = thousands(n - base)
				if okSesh && p != workload.SeshMem {
					vs = ratio(sesh-base, n-base)
				}
			}
			fmt.Printf("| %s | %s | %s | %s | %s |\n", wl, p, thousands(n), beyond, vs)
		}
	}
	fmt.Println()
	fmt.Println("Counted by valgrind's callgrind, which gives the same count for the same binary whatever else the machine is doing (within 0.3% between runs on rmw and read; within 2% on new, whose heap grows with every request, so that one collection more or less shows): the run of N+2 requests less the run of 2, divided by N, garbage collection included (GOMAXPROCS=1 and GODEBUG=gcstoptheworld=1, so that it runs in the counted thread whenever the heap reaches its goal, not on a timing of its own). Instructions are not time (a cache miss costs more than a hundred of them), and valgrind's CPU has no SHA extensions, so SHA-256 is counted on its slower AVX2 path; the counts compare the work each pair does, not its speed.")
	fmt.Println()
}

// tableHead prints a table's caption, a blank line, its header and the
// header's rule.
func tableHead(caption, header, rule string) {
	fmt.Println(caption)
	fmt.Println()
	fmt.Println(header)
	fmt.Println(rule)
}

func tripsNote(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func (r *report) printMem() {
	if len(r.mem) == 0 {
		return
	}
	tableHead("Memory stores (cmd/memstat, one process per row):",
		"| store | measurement | sessions | heap B/session | record B | overhead B/session | load p99 without → during | ratio | load service p99 without → during | ratio |",
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	name := map[string]string{"sesh": "sesh memstore", "scs": "scs memstore"}
	for _, m := range r.mem {
		switch m.Mode {
		case "bytes":
			fmt.Printf("| %s | live heap after a GC | %s | %.0f | %d | %.0f | | | | |\n", name[m.Lib],
				thousands(float64(m.Sessions)), m.BytesPerSession, m.RecordBytes, m.Overhead)
		case "sweep":
			what := "its cleanup goroutine (whole-map lock)"
			if m.Lib == "sesh" {
				what = fmt.Sprintf("Sweep(1000) back to back, %.0f ms, in 50 ms windows", m.SweepMs)
				if m.PaceUs > 0 {
					what = fmt.Sprintf("Sweep(1000) every %.0f ms, %.0f ms, in 50 ms windows", m.PaceUs/1000, m.SweepMs)
				}
				if m.Reps > 1 {
					what += fmt.Sprintf(", %d runs pooled", m.Reps)
				}
			}
			fmt.Printf("| %s | removing %s expired: %s | %s | | | | %s → %s µs | %.2f× | %s → %s µs | %.2f× |\n",
				name[m.Lib]+cond(m.isolated(), " ("+m.isolation()+")", ""), thousands(float64(m.Expired)), what, thousands(float64(m.Expired+m.Live)),
				num(m.Without.P99), num(m.During.P99), m.P99Ratio,
				num(m.WithoutService.P99), num(m.DuringService.P99), m.ServiceP99Ratio)
			if m.Lib == "sesh" && m.Burn.Loads > 0 {
				fmt.Printf("| (control) | the same windows, each Sweep call replaced by spinning as long: no store work | | | | | %s → %s µs | %.2f× | %s → %s µs | %.2f× |\n",
					num(m.Without.P99), num(m.Burn.P99), m.BurnP99Ratio,
					num(m.WithoutService.P99), num(m.BurnService.P99), m.BurnServiceP99Ratio)
			}
		}
	}
	fmt.Println()
	fmt.Println("Loads of live sessions, open loop (one every 100 µs), timed from when each was due (\"load p99\": includes waiting for a CPU, so a busy machine inflates it) and from when it started (\"service\": lock waits inside the store). For sesh, \"without\" and \"during\" are alternating 50 ms windows, without and with the sweep, until it is done (the time given is the sweeping windows' total); for scs, the 2 s before its cleanup tick and the 2 s from it. Each sesh sweep row is followed by its control: after each sweep, its windows again, each Sweep call replaced by a goroutine that spins as long as the call took (no store, no locks, no memory), with the same pauses; what the loads suffer then is what a busy CPU alone costs them on this machine, and the sweep's own cost is its difference from the control. Rows marked \"isolated\" ran under chrt --fifo 1: no other process or kernel thread of the machine can take the loader's CPU from it, so what is left is what the sweep itself costs the loads. run.sh turns Linux's real-time throttling off for them (sched_rt_runtime_us = -1): left on, it stops a real-time thread that has held a CPU for 950 ms of a second until the second is over, and the loader, which spins, would lose its CPU for 50 ms every second; \"throttled\" marks rows where it was on.")
	fmt.Println()
}

func (r *report) printTargets() {
	fmt.Println("Targets (same run):")
	fmt.Println()
	mark := func(ok bool, measured bool) string {
		switch {
		case !measured:
			return "not measured"
		case ok:
			return "**met**"
		}
		return "**not met**"
	}
	nan := math.IsNaN
	// 1. rmw on the memory store vs scs: ns/op and allocs.
	for _, mode := range []string{"serial", "parallel"} {
		a, b := r.benchMed(workload.SeshMem, "rmw", mode, ns), r.benchMed(workload.SCSMem, "rmw", mode, ns)
		fmt.Printf("- rmw, memory store, %s: sesh ÷ scs ns/op = %s (target ≤ 0.40×): %s\n", mode, ratio(a, b), mark(a/b <= 0.4, !nan(a/b)))
	}
	a, b := r.benchMed(workload.SeshMem, "rmw", "serial", allocs), r.benchMed(workload.SCSMem, "rmw", "serial", allocs)
	fmt.Printf("- rmw, memory store: sesh ÷ scs allocs/op = %s (%s vs %s; target ≤ 0.25×): %s\n", ratio(a, b), num(a), num(b), mark(a/b <= 0.25, !nan(a/b)))
	// 2. End to end as a fraction of bare net/http.
	for _, t := range []struct {
		wl  string
		min float64
	}{{"rmw", 0.7}, {"read", 0.8}, {"new", 0.85}} {
		s, n := r.rps(workload.SeshMem, t.wl), r.rps(workload.NetHTTP, t.wl)
		notes := ""
		if f := r.rps(workload.Floor, t.wl); !nan(f) {
			notes = fmt.Sprintf("; floor ÷ net/http = %s, sesh-memstore ÷ floor = %s", ratio(f, n), ratio(s, f))
		}
		for _, p := range []string{workload.FloorSealed, workload.FloorDesign} {
			if f := r.rps(p, t.wl); !nan(f) {
				notes += fmt.Sprintf("; %s ÷ net/http = %s, sesh-memstore ÷ %s = %s", p, ratio(f, n), p, ratio(s, f))
			}
		}
		if rounds, m := r.roundRatios(workload.SeshMem, workload.NetHTTP, t.wl); rounds != "" {
			notes += fmt.Sprintf("; round by round %s, median %.2f×", rounds, m)
		}
		fmt.Printf("- end to end %s, sesh-memstore ÷ net/http = %s (target ≥ %.2f×%s): %s\n", t.wl, ratio(s, n), t.min, notes, mark(s/n >= t.min, !nan(s/n)))
	}
	// 3. Redis rmw vs scs+go-redis.
	s, c := r.rps(workload.SeshRedis, "rmw"), r.rps(workload.SCSRedis, "rmw")
	fmt.Printf("- Redis rmw, sesh ÷ scs+go-redis req/s = %s (target ≥ 1.50×): %s\n", ratio(s, c), mark(s/c >= 1.5, !nan(s/c)))
	// 4. Lost updates.
	var seshLost, peerLost []string
	seshOK, peersLose, any := true, true, false
	for _, p := range workload.All {
		for _, l := range r.lost[p] {
			any = true
			switch {
			case workload.IsSesh(p) && l.Path == "/incr":
				seshLost = append(seshLost, fmt.Sprintf("%s %d", p, l.Lost))
				seshOK = seshOK && l.Lost == 0 && l.Final == l.Sent
			case !workload.IsSesh(p) && p != workload.NetHTTP:
				peerLost = append(peerLost, fmt.Sprintf("%s %d", p, l.Lost))
				peersLose = peersLose && l.Lost > 0
			}
		}
	}
	fmt.Printf("- lost updates of 200 parallel increments: sesh Exclusive %s (target 0); peers %s (shown losing): %s\n",
		strings.Join(seshLost, ", "), strings.Join(peerLost, ", "), mark(seshOK && peersLose, any))
	// 5, 6. Memory store.
	for _, m := range r.mem {
		if m.Lib != "sesh" {
			continue
		}
		switch m.Mode {
		case "bytes":
			fmt.Printf("- memory store overhead at %s sessions: %.0f B/session beyond the %d-byte record (%.0f B in all; target ≤ 300): %s\n",
				thousands(float64(m.Sessions)), m.Overhead, m.RecordBytes, m.BytesPerSession, mark(m.Overhead <= 300, true))
		case "sweep":
			how := "back to back"
			if m.PaceUs > 0 {
				how = fmt.Sprintf("paced, %.0f ms apart", m.PaceUs/1000)
			}
			how += cond(m.isolated(), ", "+m.isolation(), "")
			fmt.Printf("- p99 load latency during a sweep of %s expired sessions (%s) ÷ without = %.2f× (%s µs vs %s µs; service time %.2f×, %s vs %s µs; target ≤ 2×): %s\n",
				thousands(float64(m.Expired)), how, m.P99Ratio, num(m.During.P99), num(m.Without.P99),
				m.ServiceP99Ratio, num(m.DuringService.P99), num(m.WithoutService.P99), m.sweepVerdict())
			if m.Burn.Loads > 0 {
				fmt.Printf("  - control, the same windows spent spinning (no store work): %.2f× (%s µs; service time %.2f×)\n",
					m.BurnP99Ratio, num(m.Burn.P99), m.BurnServiceP99Ratio)
			}
		}
	}
	fmt.Println()
}

// cond is a if c holds, else b.
func cond(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}
