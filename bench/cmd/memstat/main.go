// Command memstat measures the memory stores of sesh and scs at scale. It
// prints one JSON object on stdout. Run it once per measurement (it wants
// a fresh heap):
//
//	memstat -mode bytes -lib sesh|scs [-n 1000000]
//
// fills a store with n sessions (each holding the three small values of
// the "new" workload, encoded as the library encodes them: for sesh the
// sealed record its manager writes, for scs the gob its codec writes) and
// reports the live heap per session after a GC (runtime.ReadMemStats),
// the record's own bytes, and the overhead: the difference.
//
//	memstat -mode sweep -lib sesh|scs [-n 1000000] [-live 10000]
//
// fills a store with n expired sessions and some live ones, and measures
// the latency of loads of live sessions, open loop (one load every
// -interval, each timed from when it was due, so that a stall counts for
// every load it delays), first with nothing else running, then while the
// expired sessions are removed. sesh: Store.Sweep in bounded batches
// (-batch) back to back (or -pace apart) until none are left, in windows
// of -slice that alternate with windows of the same length in which
// nothing sweeps; loads count as "during" or "without" by the window they
// were due in. Alternating short windows makes a noisy neighbour (another
// process, the Go runtime's own work) weigh on both sides alike: on a
// small shared machine, loader p99s measured seconds apart differ many
// times over. This is repeated -reps times on a freshly filled store and
// the latencies are pooled. After each sweep comes a control: the same
// windows, alternating with rest as before, in which each Sweep call is
// replaced by a goroutine that only spins (no store, no locks, no memory)
// for as long as the call took, with the same pauses. What the loads
// suffer then is what any busy CPU costs them on this machine, and the
// sweep's own share is the difference. scs: its memstore's own cleanup
// goroutine (the only way it removes expired sessions), which runs every
// cleanup interval and holds the store's lock over a full scan; the
// "during" window opens when that cleanup is due and lasts -window.
// Loads are also timed from when each started (service time): lock waits
// without the loader's own queueing, which a busy machine inflates.
//
// The output names the process's scheduling policy: bench/run.sh runs the
// sweeps once as they are and once under chrt --fifo 1, where no other
// process or kernel thread can take the loader's CPU, with the kernel's
// real-time throttling turned off (the output gives the setting: with it
// on, a loader that spins is stopped for 50 ms of every second).
//
// -trace FILE writes a runtime execution trace of the first repetition's
// windows (for `go tool trace`), which shows whether a late load waited
// on the store, on the Go scheduler, or on neither (its goroutine
// running, its thread not).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	scsmem "github.com/alexedwards/scs/v2/memstore"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/bench/workload"
	"github.com/seshgo/sesh/memstore"
)

var (
	mode     = flag.String("mode", "bytes", "bytes or sweep")
	lib      = flag.String("lib", "sesh", "sesh or scs")
	n        = flag.Int("n", 1_000_000, "sessions (bytes), or expired sessions (sweep)")
	live     = flag.Int("live", 10_000, "sweep: live sessions that are loaded")
	interval = flag.Duration("interval", 100*time.Microsecond, "sweep: one load every interval")
	baseline = flag.Duration("baseline", 2*time.Second, "sweep: scs's measurement without sweeping")
	slice    = flag.Duration("slice", 50*time.Millisecond, "sweep: sesh's alternating windows with and without the sweep")
	batch    = flag.Int("batch", 1000, "sweep: sesh's Sweep limit per call")
	window   = flag.Duration("window", 2*time.Second, "sweep: scs's measurement window from its cleanup tick")
	reps     = flag.Int("reps", 6, "sweep: sesh's repetitions (fill; sweep and rest in turn; its control)")
	pace     = flag.Duration("pace", 0, "sweep: sesh's pause between Sweep calls (0: back to back)")
	scsAfter = flag.Duration("scs-expire", 8*time.Second, "sweep: scs's expired sessions expire this long after the store is made")
	traceTo  = flag.String("trace", "", "sweep: write an execution trace of sesh's first repetition's sweep and control to this file")
	scsEvery = flag.Duration("scs-every", 12*time.Second, "sweep: scs's cleanup interval (above -scs-expire)")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("memstat: ")
	var out any
	var err error
	switch *mode + "/" + *lib {
	case "bytes/sesh":
		out, err = bytesSesh()
	case "bytes/scs":
		out, err = bytesSCS()
	case "sweep/sesh":
		out, err = sweepSesh()
	case "sweep/scs":
		out, err = sweepSCS()
	default:
		err = fmt.Errorf("unknown -mode %q -lib %q", *mode, *lib)
	}
	if err != nil {
		log.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

// BytesResult is the output of -mode bytes.
type BytesResult struct {
	Mode            string  `json:"mode"`
	Lib             string  `json:"lib"`
	Sessions        int     `json:"sessions"`
	HeapBytes       uint64  `json:"heap_bytes"`        // live heap growth after GC
	BytesPerSession float64 `json:"bytes_per_session"` // HeapBytes / Sessions
	RecordBytes     int     `json:"record_bytes"`      // the encoded record of one session
	Overhead        float64 `json:"overhead"`          // BytesPerSession - RecordBytes
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// seshRecord returns the sealed record of a session made by the "new"
// workload on sesh's memory store.
func seshRecord() (sesh.Record, error) {
	app, err := workload.New(workload.SeshMem, workload.Options{})
	if err != nil {
		return sesh.Record{}, err
	}
	defer app.Close()
	w := httptest.NewRecorder()
	app.Handler.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/new", nil))
	entries, _, err := app.Sesh.Store().(sesh.Lister).List(context.Background(), "", 1)
	if err != nil || len(entries) != 1 {
		return sesh.Record{}, fmt.Errorf("no record after /new (status %d): %v", w.Code, err)
	}
	return entries[0].Record, nil
}

func seshKey(i int) sesh.Key {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

func bytesSesh() (BytesResult, error) {
	rec, err := seshRecord()
	if err != nil {
		return BytesResult{}, err
	}
	ctx := context.Background()
	before := heap()
	st := memstore.New()
	rec.Expires = time.Now().Add(time.Hour)
	for i := range *n {
		if err := st.Save(ctx, seshKey(i), rec, 0); err != nil {
			return BytesResult{}, err
		}
	}
	after := heap()
	runtime.KeepAlive(st)
	return bytesResult("sesh", after-before, len(rec.Data)), nil
}

func bytesResult(lib string, grown uint64, record int) BytesResult {
	per := float64(grown) / float64(*n)
	return BytesResult{Mode: "bytes", Lib: lib, Sessions: *n, HeapBytes: grown, BytesPerSession: per,
		RecordBytes: record, Overhead: per - float64(record)}
}

// scsToken is a token as scs makes them: 32 random bytes in base64url.
func scsToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// scsValues are the values of the "new" workload as scs holds them.
func scsValues() map[string]any { return map[string]any{"a": 1, "b": "two", "c": true} }

func bytesSCS() (BytesResult, error) {
	codec := scs.GobCodec{}
	deadline := time.Now().Add(24 * time.Hour)
	sample, err := codec.Encode(deadline, scsValues())
	if err != nil {
		return BytesResult{}, err
	}
	before := heap()
	st := scsmem.NewWithCleanupInterval(0)
	for range *n {
		// What scs's Commit hands its store: a fresh encoding.
		b, err := codec.Encode(deadline, scsValues())
		if err != nil {
			return BytesResult{}, err
		}
		st.Commit(scsToken(), b, deadline)
	}
	after := heap()
	runtime.KeepAlive(st)
	return bytesResult("scs", after-before, len(sample)), nil
}

// SweepResult is the output of -mode sweep.
type SweepResult struct {
	Mode    string  `json:"mode"`
	Lib     string  `json:"lib"`
	Expired int     `json:"expired"`
	Live    int     `json:"live"`
	PaceUs  float64 `json:"pace_us"`  // sesh: pause between Sweep calls
	Removed int     `json:"removed"`  // sesh: records the sweeps removed, in all
	SweepMs float64 `json:"sweep_ms"` // sesh: how long one sweep's windows took, on average
	Reps    int     `json:"reps"`     // repetitions, pooled
	// Sched is the process's scheduling policy as Linux reports it:
	// "normal", or "fifo" when run under chrt --fifo, which keeps the
	// machine's other processes and kernel threads off its CPUs.
	Sched string `json:"sched"`
	// RTRuntimeUs is Linux's sched_rt_runtime_us as the measurement
	// starts: how much of each second a real-time thread may hold a CPU
	// before the kernel stops it for the rest (950000 by default: a 50 ms
	// stall a second for a loader that spins); -1: never. Absent where
	// unknown.
	RTRuntimeUs *int64 `json:"rt_runtime_us,omitempty"`
	// Without and During are the loads' latencies from when each was due
	// (open loop): they include the loader's own waits for a CPU.
	Without Latency `json:"without"`
	During  Latency `json:"during"`
	// WithoutService and DuringService time each load from when it
	// started: lock waits and CPU preemption inside a load only.
	WithoutService Latency `json:"without_service"`
	DuringService  Latency `json:"during_service"`
	// P99Ratio is During.P99 / Without.P99; ServiceP99Ratio the same for
	// service times. RepRatios are the P99Ratios of each repetition.
	P99Ratio        float64   `json:"p99_ratio"`
	ServiceP99Ratio float64   `json:"service_p99_ratio"`
	RepRatios       []float64 `json:"rep_ratios,omitempty"`
	// Burn and BurnService (sesh) are the loads during the control: after
	// each sweep, its windows again, each Sweep call replaced by spinning
	// as long as it took, touching neither the store nor memory. They
	// show what one busy CPU alone does to the loads on this machine.
	Burn                Latency `json:"burn,omitzero"`
	BurnService         Latency `json:"burn_service,omitzero"`
	BurnP99Ratio        float64 `json:"burn_p99_ratio,omitempty"`
	BurnServiceP99Ratio float64 `json:"burn_service_p99_ratio,omitempty"`
}

// Latency summarises load latencies in microseconds.
type Latency struct {
	Loads int     `json:"loads"`
	P50   float64 `json:"p50_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	d = slices.Clone(d)
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return float64(d[max(i, 0)]) / float64(time.Microsecond)
	}
	return Latency{Loads: len(d), P50: q(0.50), P99: q(0.99), P999: q(0.999), Max: q(1)}
}

// samples are the latencies of a loader's loads, in order: from when
// each was due, and from when it started.
type samples struct{ due, service []time.Duration }

func (s *samples) add(t samples) {
	s.due, s.service = append(s.due, t.due...), append(s.service, t.service...)
}

// from drops the loads due before d after the loader started.
func (s samples) from(d time.Duration) samples {
	i := min(int(d / *interval), len(s.due))
	return samples{s.due[i:], s.service[i:]}
}

func (r *SweepResult) set(without, during samples) {
	r.Without, r.During = summarize(without.due), summarize(during.due)
	r.WithoutService, r.DuringService = summarize(without.service), summarize(during.service)
	r.P99Ratio = r.During.P99 / r.Without.P99
	r.ServiceP99Ratio = r.DuringService.P99 / r.WithoutService.P99
}

func (r *SweepResult) setBurn(burn samples) {
	r.Burn, r.BurnService = summarize(burn.due), summarize(burn.service)
	r.BurnP99Ratio = r.Burn.P99 / r.Without.P99
	r.BurnServiceP99Ratio = r.BurnService.P99 / r.WithoutService.P99
}

// loader loads live sessions open loop, one every interval, until stop
// is set, and returns the loads' latencies and when the loader started
// (load i was due interval×i after it). Each load is timed from when it
// was due, so that a stall counts for every load it delays, and from
// when it started. It spins between loads: a sleep would add its own
// overshoot.
func loader(load func(i int), stop *atomic.Bool) (samples, time.Time) {
	s := samples{make([]time.Duration, 0, 1<<16), make([]time.Duration, 0, 1<<16)}
	start := time.Now()
	for i := 0; !stop.Load(); i++ {
		due := start.Add(time.Duration(i) * *interval)
		for time.Now().Before(due) {
		}
		t := time.Now()
		load(i)
		end := time.Now()
		s.due = append(s.due, end.Sub(due))
		s.service = append(s.service, end.Sub(t))
	}
	return s, start
}

// measure runs the loader for d.
func measure(load func(int), d time.Duration) samples {
	var stop atomic.Bool
	t := time.AfterFunc(d, func() { stop.Store(true) })
	defer t.Stop()
	s, _ := loader(load, &stop)
	return s
}

func sweepSesh() (SweepResult, error) {
	rec, err := seshRecord()
	if err != nil {
		return SweepResult{}, err
	}
	res := SweepResult{Mode: "sweep", Lib: "sesh", Expired: *n, Live: *live, Reps: *reps, Sched: schedPolicy(), RTRuntimeUs: rtRuntime(),
		PaceUs: float64(*pace) / float64(time.Microsecond)}
	var without, during, burn samples
	for range *reps {
		w, d, b, removed, ms, err := sweepSeshOnce(rec)
		if err != nil {
			return res, err
		}
		without.add(w)
		during.add(d)
		burn.add(b)
		res.Removed += removed
		res.SweepMs += ms / float64(*reps)
		res.RepRatios = append(res.RepRatios, summarize(d.due).P99/summarize(w.due).P99)
	}
	res.set(without, during)
	res.setBurn(burn)
	return res, nil
}

// sweepSeshOnce fills a fresh store and removes the expired sessions in
// windows of -slice that alternate with windows without sweeping, loading
// live sessions all along; then, as a control, it replays the sweeping
// windows with each Sweep call replaced by spinning as long, again
// alternating with windows of rest. It returns
// the loads without the sweep or the spinning, during the sweep and
// during the spinning, how many records the sweep removed, and how long
// the sweeping windows took in all, in milliseconds.
func sweepSeshOnce(rec sesh.Record) (without, during, burn samples, removed int, ms float64, err error) {
	var off atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	st := memstore.New(memstore.WithClock(now))
	ctx := context.Background()
	rec.Expires = now().Add(time.Minute)
	for i := range *n {
		if err = st.Save(ctx, seshKey(i), rec, 0); err != nil {
			return
		}
	}
	rec.Expires = now().Add(24 * time.Hour)
	keys := make([]sesh.Key, *live)
	for i := range keys {
		keys[i] = seshKey(*n + i)
		if err = st.Save(ctx, keys[i], rec, 0); err != nil {
			return
		}
	}
	off.Store(int64(2 * time.Minute)) // the first n are now expired
	runtime.GC()
	if *traceTo != "" {
		var f *os.File
		if f, err = os.Create(*traceTo); err != nil {
			return
		}
		*traceTo = "" // the first repetition only
		if err = trace.Start(f); err != nil {
			return
		}
		defer func() {
			trace.Stop()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
	}
	var failed atomic.Int64
	var stop atomic.Bool
	type result struct {
		all   samples
		start time.Time
	}
	done := make(chan result)
	go func() {
		all, start := loader(func(i int) {
			if _, err := st.Load(ctx, keys[(i*7919)%len(keys)]); err != nil {
				failed.Add(1)
			}
		}, &stop)
		done <- result{all, start}
	}()
	type window struct {
		from, to time.Time
		burn     bool            // the control: spinning, not sweeping
		calls    []time.Duration // how long each Sweep call took
	}
	var windows []window // the busy ones
	var swept time.Duration
	for removed < *n {
		time.Sleep(*slice) // a window without
		w := window{from: time.Now()}
		for time.Since(w.from) < *slice && removed < *n {
			t := time.Now()
			k, serr := st.Sweep(ctx, *batch)
			w.calls = append(w.calls, time.Since(t))
			if serr != nil {
				err = serr
				break
			}
			removed += k
			if k < *batch && removed < *n {
				err = fmt.Errorf("Sweep(%d) removed %d with %d expired left", *batch, k, *n-removed)
				break
			}
			if *pace > 0 {
				time.Sleep(*pace)
			}
		}
		w.to = time.Now()
		windows = append(windows, w)
		swept += w.to.Sub(w.from)
		if err != nil {
			break
		}
	}
	if err == nil {
		// The control: the same windows, each Sweep call replaced by
		// spinning for as long as it took, with the same pauses.
		sweeping := len(windows)
		for _, sw := range windows[:sweeping] {
			time.Sleep(*slice)
			w := window{from: time.Now(), burn: true}
			for _, d := range sw.calls {
				spin(d)
				if *pace > 0 {
					time.Sleep(*pace)
				}
			}
			w.to = time.Now()
			windows = append(windows, w)
		}
	}
	time.Sleep(*slice) // a last window without
	stop.Store(true)
	r := <-done
	// File each load by when it was due: a load that a sweeping window
	// delayed past its end still counts as during.
	wi := 0
	for i := range r.all.due {
		due := r.start.Add(time.Duration(i) * *interval)
		for wi < len(windows) && !due.Before(windows[wi].to) {
			wi++
		}
		to := &without
		if wi < len(windows) && !due.Before(windows[wi].from) {
			to = &during
			if windows[wi].burn {
				to = &burn
			}
		}
		to.due = append(to.due, r.all.due[i])
		to.service = append(to.service, r.all.service[i])
	}
	ms = float64(swept) / float64(time.Millisecond)
	if err == nil && (removed != *n || failed.Load() != 0) {
		err = fmt.Errorf("sweep removed %d of %d; %d loads failed", removed, *n, failed.Load())
	}
	return
}

// schedPolicy names the scheduling policy of this process (field 41 of
// /proc/self/stat), or "unknown" where Linux does not report it.
func schedPolicy() string {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return "unknown"
	}
	// The command name (field 2) may hold spaces; it ends at the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 39 {
		return "unknown"
	}
	switch f[38] { // field 41, counted from field 3
	case "0":
		return "normal"
	case "1":
		return "fifo"
	case "2":
		return "rr"
	}
	return "policy " + f[38]
}

// rtRuntime reads /proc/sys/kernel/sched_rt_runtime_us, or gives nil.
func rtRuntime() *int64 {
	b, err := os.ReadFile("/proc/sys/kernel/sched_rt_runtime_us")
	if err != nil {
		return nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return nil
	}
	return &v
}

// spin keeps one goroutine busy for d, without allocating, locking or
// touching the store.
func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	spinSink.Store(x)
}

var spinSink atomic.Uint64

func sweepSCS() (SweepResult, error) {
	res := SweepResult{Mode: "sweep", Lib: "scs", Expired: *n, Live: *live, Reps: 1, Sched: schedPolicy(), RTRuntimeUs: rtRuntime()}
	// The cleanup runs every `every` from the store's creation; the
	// expired sessions must be written, expire, and be measured against
	// before the first run. The cleanup's cost does not depend on the
	// data, so the expired sessions share one encoding.
	expireAfter, every := *scsAfter, *scsEvery
	start := time.Now()
	st := scsmem.NewWithCleanupInterval(every)
	defer st.StopCleanup()
	codec := scs.GobCodec{}
	deadline := start.Add(expireAfter)
	sample, err := codec.Encode(deadline, scsValues())
	if err != nil {
		return res, err
	}
	for range *n {
		st.Commit(scsToken(), sample, deadline)
	}
	keys := make([]string, *live)
	liveDeadline := start.Add(24 * time.Hour)
	for i := range keys {
		b, _ := codec.Encode(liveDeadline, scsValues())
		keys[i] = scsToken()
		st.Commit(keys[i], b, liveDeadline)
	}
	if el := time.Since(start); el > expireAfter-500*time.Millisecond {
		return res, fmt.Errorf("filling took %v; the sessions expired before the baseline could be measured: raise -scs-expire and -scs-every", el)
	}
	time.Sleep(time.Until(start.Add(expireAfter + 200*time.Millisecond)))
	runtime.GC()
	var failed atomic.Int64
	load := func(i int) {
		if _, ok, _ := st.Find(keys[(i*7919)%len(keys)]); !ok {
			failed.Add(1)
		}
	}
	base := min(*baseline, time.Until(start.Add(every-300*time.Millisecond)))
	without := measure(load, base)
	// The loads due from the cleanup tick for -window.
	const lead = 50 * time.Millisecond
	time.Sleep(time.Until(start.Add(every - lead)))
	during := measure(load, lead+*window).from(lead)
	if failed.Load() != 0 {
		return res, fmt.Errorf("%d loads failed", failed.Load())
	}
	res.set(without, during)
	return res, nil
}
