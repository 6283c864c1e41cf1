package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// maxBatchLength bounds the timed part of one batch. Every proof of a
// batch is signed just before the batch starts, so a proof is at most its
// signing time plus maxBatchLength old when it is sent.
const maxBatchLength = 20 * time.Second

// minBatchLength is the shortest batch worth its signing time.
const minBatchLength = 100 * time.Millisecond

// maxProofAge ends a batch early when slow signing would otherwise send a
// proof older than this. The server accepts a proof whose iat is up to
// 60 s old, and the margin covers a difference of clocks.
const maxProofAge = 50 * time.Second

// proofHeadroom is the share of extra proofs signed beyond the rate
// estimate, so that a run slightly faster than the estimate still lasts
// the whole batch.
const proofHeadroom = 1.3

// loadConfig is the input of the timed part.
type loadConfig struct {
	client        *http.Client
	tokenEndpoint string
	formBase      string // the encoded form without subject_token
	workers       int
	users         int
	subjectPrefix string
	freshSubjects bool
	subjects      *subjectSigner
	duration      time.Duration
	rate          float64 // initial estimate of exchanges a second
	maxProofs     int     // per batch, over all workers
	log           io.Writer
}

// batchResult describes one batch of the timed part.
type batchResult struct {
	Seconds        float64 `json:"seconds"`
	SignSeconds    float64 `json:"sign_seconds"`
	ProofsSigned   int     `json:"proofs_signed"`
	Requests       int64   `json:"requests"`
	Exchanges      int64   `json:"exchanges"`
	ProofsRanOut   bool    `json:"proofs_ran_out"`
	PlannedSeconds float64 `json:"planned_seconds"`
}

// errorCount counts one kind of failed request and keeps one example of
// its error_description.
type errorCount struct {
	Count   int64  `json:"count"`
	Example string `json:"example,omitempty"`
}

// loadResult is the outcome of all batches.
type loadResult struct {
	batches   []batchResult
	latencies []time.Duration // of successful exchanges
	errors    map[string]*errorCount
	seconds   float64
	requests  int64
	exchanges int64
}

// runLoad runs the timed part in batches of at most maxBatchLength. Before
// each batch it signs the proofs (and, with -fresh-subjects, the subject
// tokens) that the batch needs, with the clock stopped, so that signing
// takes no CPU from the server while requests are measured.
func runLoad(cfg loadConfig) (*loadResult, error) {
	workers := make([]*loadWorker, cfg.workers)
	for i := range workers {
		proofs, err := newProofSigner()
		if err != nil {
			return nil, err
		}
		subjects, err := cfg.subjects.clone()
		if err != nil {
			return nil, err
		}
		workers[i] = &loadWorker{id: i, proofs: proofs, subjects: subjects}
	}

	result := &loadResult{errors: map[string]*errorCount{}}
	rate := cfg.rate

	// A batch that ran out of proofs ends early and the next one covers the
	// rest of the duration. maxBatches bounds the loop even so.
	maxBatches := int(cfg.duration/maxBatchLength) + 8
	for remaining := cfg.duration; remaining >= minBatchLength && len(result.batches) < maxBatches; {
		length := min(remaining, maxBatchLength)
		perWorker := proofsPerWorker(rate, length, cfg.workers, cfg.maxProofs)

		batch, err := runBatch(cfg, workers, length, perWorker)
		if err != nil {
			return nil, err
		}
		batch = result.add(batch, workers)
		fmt.Fprintf(cfg.log, "  batch %d: %.1f s, %d exchanges, %d errors (proofs signed in %.1f s)\n",
			len(result.batches), batch.Seconds, batch.Exchanges, batch.Requests-batch.Exchanges,
			batch.SignSeconds)

		// Size the next batch on the measured rate.
		measured := float64(batch.Requests) / batch.Seconds
		if batch.ProofsRanOut {
			fmt.Fprintln(cfg.log, "  note: the proofs ran out before the batch ended; "+
				"the next batch signs more, up to -max-proofs")
			measured *= 2
		}
		rate = max(measured, 1)
		remaining -= time.Duration(batch.Seconds * float64(time.Second))
	}
	return result, nil
}

// proofsPerWorker returns how many proofs each worker needs for a batch of
// length at rate exchanges a second, capped at maxProofs over all workers.
func proofsPerWorker(rate float64, length time.Duration, workers, maxProofs int) int {
	want := math.Ceil(rate * length.Seconds() * proofHeadroom / float64(workers))
	limit := max(maxProofs/workers, 1)
	return max(1, min(int(want), limit))
}

// runBatch signs perWorker proofs for every worker, then sends exchanges
// until length has passed or a worker has used all its proofs.
func runBatch(cfg loadConfig, workers []*loadWorker, length time.Duration, perWorker int) (batchResult, error) {
	signStart := time.Now()
	shared, err := presign(cfg, workers, perWorker, signStart)
	if err != nil {
		return batchResult{}, err
	}
	batch := batchResult{
		SignSeconds:    time.Since(signStart).Seconds(),
		ProofsSigned:   perWorker * len(workers),
		PlannedSeconds: length.Seconds(),
	}

	start := time.Now()
	deadline := start.Add(length)
	if oldest := signStart.Add(maxProofAge); oldest.Before(deadline) {
		if oldest.Sub(start) < time.Second {
			return batch, fmt.Errorf("signing %d proofs took %.1f s, too long for their iat window: "+
				"lower -max-proofs or -rate", batch.ProofsSigned, batch.SignSeconds)
		}
		deadline = oldest
		fmt.Fprintf(cfg.log, "  note: signing took %.1f s, so this batch lasts %.1f s to keep proofs fresh\n",
			batch.SignSeconds, oldest.Sub(start).Seconds())
	}

	var ranOut atomic.Bool
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			if w.run(cfg, shared, deadline, &ranOut) {
				ranOut.Store(true)
			}
		})
	}
	wg.Wait()

	batch.Seconds = time.Since(start).Seconds()
	batch.ProofsRanOut = ranOut.Load()
	return batch, nil
}

// presign fills every worker's proof list with proofs whose iat is
// issuedAt. It returns one subject token per user, or nil when every
// request carries its own fresh subject token.
func presign(cfg loadConfig, workers []*loadWorker, perWorker int, issuedAt time.Time) ([]string, error) {
	var shared []string
	if !cfg.freshSubjects {
		shared = make([]string, cfg.users)
		for i := range shared {
			token, err := cfg.subjects.sign(userName(cfg.subjectPrefix, i), issuedAt)
			if err != nil {
				return nil, err
			}
			shared[i] = token
		}
	}

	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { errs[w.id] = w.presign(cfg, perWorker, issuedAt) })
	}
	wg.Wait()
	return shared, errors.Join(errs...)
}

func (w *loadWorker) presign(cfg loadConfig, count int, issuedAt time.Time) error {
	w.proofList = make([]string, count)
	w.freshList = nil
	w.latencies = make([]time.Duration, 0, count)
	w.errors = map[string]*errorCount{}
	w.requests = 0

	for i := range w.proofList {
		proof, err := w.proofs.sign(cfg.tokenEndpoint, issuedAt)
		if err != nil {
			return err
		}
		w.proofList[i] = proof
	}
	if !cfg.freshSubjects {
		return nil
	}

	w.freshList = make([]string, count)
	for i := range w.freshList {
		user := userName(cfg.subjectPrefix, (w.id+i*cfg.workers)%cfg.users)
		token, err := w.subjects.sign(user, issuedAt)
		if err != nil {
			return err
		}
		w.freshList[i] = token
	}
	return nil
}

// add merges the workers' counts of batch into r and returns batch with
// its request and exchange counts.
func (r *loadResult) add(batch batchResult, workers []*loadWorker) batchResult {
	r.batches = append(r.batches, batch)
	r.seconds += batch.Seconds
	for _, w := range workers {
		r.requests += w.requests
		r.exchanges += int64(len(w.latencies))
		r.latencies = append(r.latencies, w.latencies...)
		for kind, count := range w.errors {
			total := r.errors[kind]
			if total == nil {
				total = &errorCount{Example: count.Example}
				r.errors[kind] = total
			}
			total.Count += count.Count
		}
		batch.Requests += w.requests
		batch.Exchanges += int64(len(w.latencies))

		// Release the batch's proofs before the next batch signs its own.
		w.proofList, w.freshList, w.latencies = nil, nil, nil
	}
	r.batches[len(r.batches)-1] = batch
	return batch
}

func userName(prefix string, i int) string {
	return fmt.Sprintf("%s%d", prefix, i+1)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
