package pgstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/seshgo/sesh/pgstore"
)

// BenchmarkSweep100k sweeps 100,000 expired records in batches of 1000.
// The records are loaded with COPY before the timer starts. It reports
// the whole sweep (sweep-ms) and the slowest batch (max-batch-ms).
func BenchmarkSweep100k(b *testing.B) {
	const total, batch = 100_000, 1000
	ctx := context.Background()
	pool := newPool(b)
	now := time.Now()
	s, table := freshStore(b, pool, pgstore.WithClock(func() time.Time { return now }))
	data := make([]byte, 200)
	rand.Read(data)
	var sweepMS, maxBatchMS float64
	for range b.N {
		b.StopTimer()
		rows := make([][]any, total)
		for i := range rows {
			k := make([]byte, 32)
			rand.Read(k)
			var user any
			if i%2 == 0 {
				user = fmt.Appendf(nil, "user-%d", i%5000)
			}
			rows[i] = []any{k, data, int64(1), now.Add(-time.Duration(i+1) * time.Second).UnixMilli(), user, int16(0), i%10 == 0}
		}
		n, err := pool.CopyFrom(ctx, pgx.Identifier{table},
			[]string{"k", "data", "version", "expires", "user_key", "kind", "tombstone"}, pgx.CopyFromRows(rows))
		if err != nil || n != total {
			b.Fatalf("CopyFrom: %d rows, %v", n, err)
		}
		if _, err := pool.Exec(ctx, "ANALYZE "+pgx.Identifier{table}.Sanitize()); err != nil {
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
