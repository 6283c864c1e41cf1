package storage

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

type benchBackend struct {
	name      string
	newConfig newConfigFunc
}

// benchBackends lists the databases the benchmarks run on: SQLite in each
// of sqliteModes, and PostgreSQL when postgresDSNEnv is set.
func benchBackends(sqliteModes ...string) []benchBackend {
	var list []benchBackend
	for _, mode := range sqliteModes {
		list = append(list, benchBackend{"sqlite_" + mode, sqliteConfig(mode)})
	}
	if dsn := os.Getenv(postgresDSNEnv); dsn != "" {
		list = append(list, benchBackend{"postgres", postgresConfig(dsn)})
	}
	return list
}

// BenchmarkCommitExchange measures one caller at a time, so every exchange
// pays a whole commit.
func BenchmarkCommitExchange(b *testing.B) {
	for _, bc := range benchBackends("FULL", "NORMAL") {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, bc.newConfig(b))
			ctx := context.Background()

			cpu := processCPUTime()
			i := 0
			for b.Loop() {
				if _, err := s.CommitExchange(ctx, issuedWrite(i)); err != nil {
					b.Fatalf("CommitExchange: %v", err)
				}
				i++
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkCommitExchangeParallel measures many concurrent callers, as a
// busy token endpoint has, so the writer commits them in batches.
func BenchmarkCommitExchangeParallel(b *testing.B) {
	for _, bc := range benchBackends("FULL") {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, bc.newConfig(b))
			ctx := context.Background()

			cpu := processCPUTime()
			var next atomic.Int64
			b.SetParallelism(16) // 16 callers per GOMAXPROCS
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					if _, err := s.CommitExchange(ctx, issuedWrite(i)); err != nil {
						b.Errorf("CommitExchange: %v", err)
						return
					}
				}
			})
			b.StopTimer()
			reportCPU(b, cpu)
			if n := s.batches.Load(); n > 0 {
				b.ReportMetric(float64(s.batchedItems.Load())/float64(n), "items/batch")
			}
		})
	}
}

// reportCPU reports the process CPU time per operation since start. On a
// shared machine it varies less than wall time per operation.
func reportCPU(b *testing.B, start time.Duration) {
	if start == 0 {
		return
	}
	used := processCPUTime() - start
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
}
