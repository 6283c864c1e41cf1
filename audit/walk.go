package audit

import "fmt"

// ProblemKind classifies what ChainWalker found wrong.
type ProblemKind string

// Problem kinds.
const (
	// ProblemEdited: a record's fields no longer match its hash, or its
	// hash no longer matches what the next record links to.
	ProblemEdited ProblemKind = "edited"
	// ProblemDeleted: records are missing and no retention run recorded
	// their deletion.
	ProblemDeleted ProblemKind = "deleted"
	// ProblemReordered: a record is stored under an ID other than the one
	// it was written with.
	ProblemReordered ProblemKind = "reordered"
	// ProblemCheckpoint: the latest checkpoint is invalid, or the chain
	// does not pass through the head it signed.
	ProblemCheckpoint ProblemKind = "checkpoint"
	// ProblemGaps: the recorded deletions differ from the signed ones.
	ProblemGaps ProblemKind = "gaps"
	// ProblemHead: the chain head is missing or does not match the last
	// record.
	ProblemHead ProblemKind = "head"
)

// ChainProblem is the first inconsistency of an audit chain: the ID of
// the record concerned and what is wrong with it.
type ChainProblem struct {
	ID      int64
	Kind    ProblemKind
	Message string
}

func (p *ChainProblem) Error() string {
	return fmt.Sprintf("audit record %d %s: %s", p.ID, p.Kind, p.Message)
}

// reorderWindow is how far from its ID a record's original position is
// searched when its hash does not match, to tell a moved record from an
// edited one.
const reorderWindow = 1024

// ChainWalker checks records and deleted ranges fed to it in ID order.
// Next, Gap and End return the first problem and nil while the chain is
// intact. After a problem the walker's state is undefined.
type ChainWalker struct {
	checkpoint *Checkpoint
	prevID     int64
	prevHash   string
	gaps       int64
}

// NewChainWalker returns a walker at the start of the chain. c is the
// verified latest checkpoint, or nil.
func NewChainWalker(c *Checkpoint) *ChainWalker {
	return &ChainWalker{checkpoint: c}
}

// Gaps returns the number of deleted ranges crossed so far.
func (w *ChainWalker) Gaps() int64 { return w.gaps }

// Next checks r, the record after the previous record or gap.
func (w *ChainWalker) Next(r *Record) *ChainProblem {
	if got := ChainHash(r); got != r.Hash {
		if seq, ok := originalSeq(r); ok {
			return &ChainProblem{ID: r.ID, Kind: ProblemReordered, Message: fmt.Sprintf(
				"the record stored under ID %d was written as record %d", r.ID, seq)}
		}
		return &ChainProblem{ID: r.ID, Kind: ProblemEdited, Message: "its fields do not match its stored hash"}
	}
	if p := w.link(r.ID, r.PrevHash); p != nil {
		return p
	}
	if c := w.checkpoint; c != nil && r.ID == c.Seq && r.Hash != c.Hash {
		return &ChainProblem{ID: r.ID, Kind: ProblemCheckpoint, Message: "its hash differs from the one the latest checkpoint signed"}
	}
	w.prevID, w.prevHash = r.ID, r.Hash
	return nil
}

// Gap checks g, a range deleted by a retention run, after the previous
// record or gap.
func (w *ChainWalker) Gap(g Gap) *ChainProblem {
	if g.FirstID <= w.prevID || g.LastID < g.FirstID {
		return &ChainProblem{ID: g.FirstID, Kind: ProblemGaps, Message: fmt.Sprintf(
			"the deleted range %d to %d overlaps record %d or is empty", g.FirstID, g.LastID, w.prevID)}
	}
	if p := w.link(g.FirstID, g.PrevHash); p != nil {
		return p
	}
	if c := w.checkpoint; c != nil && g.LastID == c.Seq && g.LastHash != c.Hash {
		return &ChainProblem{ID: g.LastID, Kind: ProblemCheckpoint, Message: "the deleted range ending here differs from the head the latest checkpoint signed"}
	}
	w.prevID, w.prevHash = g.LastID, g.LastHash
	w.gaps++
	return nil
}

// End checks that the chain ends at the head, the ID and hash of the last
// record that the writers recorded.
func (w *ChainWalker) End(headSeq int64, headHash string) *ChainProblem {
	if c := w.checkpoint; c != nil && w.prevID < c.Seq {
		return &ChainProblem{ID: w.prevID + 1, Kind: ProblemDeleted, Message: fmt.Sprintf(
			"records %d to %d are missing, though the latest checkpoint signed record %d", w.prevID+1, c.Seq, c.Seq)}
	}
	switch {
	case w.prevID < headSeq:
		return &ChainProblem{ID: w.prevID + 1, Kind: ProblemDeleted, Message: fmt.Sprintf(
			"records %d to %d are missing from the end of the log", w.prevID+1, headSeq)}
	case w.prevID > headSeq:
		return &ChainProblem{ID: headSeq + 1, Kind: ProblemHead, Message: fmt.Sprintf(
			"records %d to %d were written without moving the chain head", headSeq+1, w.prevID)}
	case w.prevHash != headHash:
		return &ChainProblem{ID: w.prevID, Kind: ProblemEdited, Message: "its hash does not match the chain head: it was edited or replaced"}
	}
	return nil
}

// link checks that the record or gap starting at id links to the
// previous one.
func (w *ChainWalker) link(id int64, prevHash string) *ChainProblem {
	if prevHash == w.prevHash {
		// An ID may have been skipped before the chain existed, when a
		// failed transaction used it; the link shows nothing is missing.
		return nil
	}
	if c := w.checkpoint; c != nil && w.prevID < c.Seq && id > c.Seq {
		return &ChainProblem{ID: c.Seq, Kind: ProblemDeleted, Message: fmt.Sprintf(
			"record %d, which the latest checkpoint signed, is missing", c.Seq)}
	}
	if id != w.prevID+1 {
		return &ChainProblem{ID: w.prevID + 1, Kind: ProblemDeleted, Message: fmt.Sprintf(
			"records %d to %d are missing and no retention run recorded their deletion", w.prevID+1, id-1)}
	}
	if w.prevID == 0 {
		return &ChainProblem{ID: id, Kind: ProblemEdited, Message: "it is the first record but names a previous hash"}
	}
	return &ChainProblem{ID: w.prevID, Kind: ProblemEdited, Message: fmt.Sprintf(
		"its hash no longer matches the previous hash stored in record %d: it was edited or replaced", id)}
}

// originalSeq searches the IDs near r.ID for the one r's hash was
// computed with.
func originalSeq(r *Record) (int64, bool) {
	moved := *r
	for seq := max(1, r.ID-reorderWindow); seq <= r.ID+reorderWindow; seq++ {
		if seq == r.ID {
			continue
		}
		moved.ID = seq
		if ChainHash(&moved) == r.Hash {
			return seq, true
		}
	}
	return 0, false
}
