package herald

import "strconv"

// MaxReadSeqs bounds the seqs of one read request: the body of
// POST /v1/notifications/read and a WebSocket read frame alike.
const MaxReadSeqs = 1000

// ValidateRead checks a mark-read request, the same for HTTP and the
// WebSocket: exactly one of a non-empty seqs (1 to MaxReadSeqs seqs, each
// ≥ 1) and all=true. Every failure is a *ValidationError naming the field:
// "seqs" for both given, neither given (an empty list counts as none) or too
// many seqs; "seqs[i]" for a seq of 0.
func ValidateRead(seqs []uint64, all bool) error {
	switch {
	case all && len(seqs) > 0:
		return invalid("seqs", `give "seqs" or "all":true, not both`)
	case all:
		return nil
	case len(seqs) == 0:
		return invalid("seqs", `needs a non-empty "seqs" or "all":true`)
	case len(seqs) > MaxReadSeqs:
		return invalid("seqs", "at most %d seqs per request, got %d", MaxReadSeqs, len(seqs))
	}
	for i, s := range seqs {
		if s == 0 {
			return invalid("seqs["+strconv.Itoa(i)+"]", "seqs start at 1")
		}
	}
	return nil
}
