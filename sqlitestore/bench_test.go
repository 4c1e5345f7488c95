package sqlitestore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seshgo/sesh/sqlitestore"
)

// BenchmarkSweep100k sweeps 100,000 expired records in batches of 1000.
// The records are loaded with multi-row INSERTs in one transaction before
// the timer starts. It reports the whole sweep (sweep-ms) and the slowest
// batch (max-batch-ms).
func BenchmarkSweep100k(b *testing.B) {
	const total, batch, perInsert = 100_000, 1000, 1000
	ctx := context.Background()
	db, _ := newDB(b)
	now := time.Now()
	s, table := freshStore(b, db, sqlitestore.WithClock(func() time.Time { return now }))
	data := make([]byte, 200)
	rand.Read(data)
	insert := `INSERT INTO "` + table + `" (k, data, version, expires, user_key, kind, tombstone) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, 1, ?, ?, 0, ?),", perInsert), ",")
	var sweepMS, maxBatchMS float64
	for range b.N {
		b.StopTimer()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		args := make([]any, 0, 5*perInsert)
		for i := range total {
			k := make([]byte, 32)
			rand.Read(k)
			var user any
			if i%2 == 0 {
				user = fmt.Appendf(nil, "user-%d", i%5000)
			}
			tomb := 0
			if i%10 == 0 {
				tomb = 1
			}
			args = append(args, k, data, now.Add(-time.Duration(i+1)*time.Second).UnixMilli(), user, tomb)
			if len(args) == cap(args) {
				if _, err := tx.ExecContext(ctx, insert, args...); err != nil {
					b.Fatalf("insert: %v", err)
				}
				args = args[:0]
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		swept := 0
		for {
			t0 := time.Now()
			n, err := s.Sweep(ctx, batch)
			if err != nil {
				b.Fatalf("Sweep: %v", err)
			}
			maxBatchMS = max(maxBatchMS, float64(time.Since(t0).Microseconds())/1000)
			swept += n
			if n < batch {
				break
			}
		}
		sweepMS += float64(time.Since(start).Microseconds()) / 1000
		if swept != total {
			b.Fatalf("swept %d records, want %d", swept, total)
		}
	}
	b.ReportMetric(sweepMS/float64(b.N), "sweep-ms")
	b.ReportMetric(maxBatchMS, "max-batch-ms")
}
