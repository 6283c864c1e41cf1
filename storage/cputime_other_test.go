//go:build !unix

package storage

import "time"

// processCPUTime returns 0: CPU time is only measured on Unix.
func processCPUTime() time.Duration { return 0 }
