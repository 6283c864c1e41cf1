package main

import (
	"context"
	"log/slog"
	"time"
)

// auditHousekeeping signs a checkpoint and deletes the records past their
// retention every audit.checkpoint_interval. Replicas may all run it: a
// checkpoint of an unchanged head is not written twice, and each prune
// transaction locks the chain head.
func (a *app) auditHousekeeping(ctx context.Context, logger *slog.Logger) {
	tick := time.NewTicker(time.Duration(a.cfg.Audit.CheckpointInterval))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := a.pruneAudit(ctx)
		if err != nil && ctx.Err() == nil {
			logger.Error("audit checkpoint or retention run failed; the next run retries", "error", err)
			continue
		}
		if res.Deleted > 0 {
			logger.Info("audit retention run finished", "deleted", res.Deleted, "checkpoints", res.Checkpoints)
		}
	}
}
