package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"time"
)

// report is the result of one run, printed as text or, with -json, as
// one JSON object.
type report struct {
	Issuer        string        `json:"issuer,omitempty"`
	Concurrency   int           `json:"concurrency,omitempty"`
	Users         int           `json:"users,omitempty"`
	FreshSubjects bool          `json:"fresh_subjects"`
	GoVersion     string        `json:"go_version"`
	CPUs          int           `json:"cpus"`
	GOMAXPROCS    int           `json:"gomaxprocs"`
	Floor         *floorResult  `json:"floor,omitempty"`
	Load          *loadReport   `json:"load,omitempty"`
	FloorRatio    float64       `json:"exchanges_per_floor,omitempty"`
	Batches       []batchResult `json:"batches,omitempty"`
}

// loadReport summarizes the timed part.
type loadReport struct {
	Seconds   float64                `json:"seconds"`
	Requests  int64                  `json:"requests"`
	Exchanges int64                  `json:"exchanges"`
	PerSecond float64                `json:"exchanges_per_second"`
	Latency   latencyReport          `json:"latency_ms"`
	Errors    map[string]*errorCount `json:"errors"`
	ErrorRate float64                `json:"error_rate"`
}

// latencyReport holds percentiles of successful exchanges, in milliseconds.
type latencyReport struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func newReport() *report {
	return &report{
		GoVersion:  runtime.Version(),
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
}

// setLoad summarizes result into r and, when the floor was measured,
// computes exchanges a second divided by the floor.
func (r *report) setLoad(result *loadResult) {
	slices.Sort(result.latencies)
	load := &loadReport{
		Seconds:   result.seconds,
		Requests:  result.requests,
		Exchanges: result.exchanges,
		Errors:    result.errors,
		Latency: latencyReport{
			P50: milliseconds(percentile(result.latencies, 0.50)),
			P90: milliseconds(percentile(result.latencies, 0.90)),
			P99: milliseconds(percentile(result.latencies, 0.99)),
			Max: milliseconds(percentile(result.latencies, 1)),
		},
	}
	if result.seconds > 0 {
		load.PerSecond = float64(result.exchanges) / result.seconds
	}
	if result.requests > 0 {
		load.ErrorRate = float64(result.requests-result.exchanges) / float64(result.requests)
	}
	r.Load = load
	r.Batches = result.batches
	if r.Floor != nil && r.Floor.PerSecond > 0 {
		r.FloorRatio = load.PerSecond / r.Floor.PerSecond
	}
}

// percentile returns the nearest-rank percentile p (0 < p ≤ 1) of sorted
// durations, or 0 when there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func milliseconds(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

func (r *report) writeJSON(w io.Writer) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	return encoder.Encode(r)
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "\n%s, %d CPUs, GOMAXPROCS %d\n", r.GoVersion, r.CPUs, r.GOMAXPROCS)
	if f := r.Floor; f != nil {
		fmt.Fprintf(w, "\nCrypto floor (%d workers, %.1f s, no server)\n", f.Workers, f.Seconds)
		fmt.Fprintf(w, "  exchanges/s:             %8.0f\n", f.PerSecond)
		fmt.Fprintf(w, "  verify subject token:    %8.0f µs\n", f.SubjectVerifyUS)
		fmt.Fprintf(w, "  verify DPoP proof:       %8.0f µs\n", f.ProofVerifyUS)
		fmt.Fprintf(w, "  sign access token:       %8.0f µs\n", f.TokenSignUS)
		fmt.Fprintf(w, "  with cached subjects:    %8.0f /s (estimate from the two parts above)\n",
			f.CachedSubjectEst)
	}

	l := r.Load
	if l == nil {
		return
	}
	fmt.Fprintf(w, "\nLoad against %s (%d workers, %d users, fresh subjects: %t)\n",
		r.Issuer, r.Concurrency, r.Users, r.FreshSubjects)
	fmt.Fprintf(w, "  duration:                %8.1f s\n", l.Seconds)
	fmt.Fprintf(w, "  batches:                 %8d\n", len(r.Batches))
	fmt.Fprintf(w, "  requests:                %8d\n", l.Requests)
	fmt.Fprintf(w, "  exchanges/s:             %8.0f\n", l.PerSecond)
	fmt.Fprintf(w, "  latency p50:             %8.2f ms\n", l.Latency.P50)
	fmt.Fprintf(w, "  latency p90:             %8.2f ms\n", l.Latency.P90)
	fmt.Fprintf(w, "  latency p99:             %8.2f ms\n", l.Latency.P99)
	fmt.Fprintf(w, "  latency max:             %8.2f ms\n", l.Latency.Max)
	if r.FloorRatio > 0 {
		fmt.Fprintf(w, "  exchanges/s ÷ floor:     %8.2f\n", r.FloorRatio)
	}

	if len(l.Errors) == 0 {
		fmt.Fprintln(w, "  errors:                         0")
		return
	}
	fmt.Fprintf(w, "  errors:                  %8d (%.2f%% of requests)\n",
		l.Requests-l.Exchanges, 100*l.ErrorRate)
	kinds := make([]string, 0, len(l.Errors))
	for kind := range l.Errors {
		kinds = append(kinds, kind)
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		count := l.Errors[kind]
		fmt.Fprintf(w, "    %-32s %8d", kind, count.Count)
		if count.Example != "" {
			fmt.Fprintf(w, "  e.g. %q", count.Example)
		}
		fmt.Fprintln(w)
	}
}
