package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// scopePolicy is one scope's due index (sorted by store.PolicyDue.Less)
// and cursor.
type scopePolicy struct {
	due    []store.PolicyDue
	cursor store.PolicyDue
}

func (s *Store) scopePolicy(scope string) *scopePolicy {
	sp, ok := s.policyDue[scope]
	if !ok {
		sp = &scopePolicy{}
		s.policyDue[scope] = sp
	}
	return sp
}

// checkPolicy validates the input of PutPolicy, the same way the real
// stores do.
func checkPolicy(userID string, state []byte, due []store.PolicyDue) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if len(state) > store.MaxPolicyStateBytes {
		return &herald.ValidationError{Field: "state", Reason: fmt.Sprintf("is %d bytes, more than the %d allowed", len(state), store.MaxPolicyStateBytes)}
	}
	for _, d := range due {
		if err := store.ValidatePolicyDue(d); err != nil {
			return err
		}
	}
	return nil
}

// normDue is d as the store keeps it: UTC, microseconds.
func normDue(d store.PolicyDue) store.PolicyDue {
	d.At = d.At.UTC().Truncate(time.Microsecond)
	return d
}

// PutPolicy implements store.Writer, under the store's mutex like Append:
// a fenced writer changes nothing.
func (w *writer) PutPolicy(ctx context.Context, userID string, state []byte, due []store.PolicyDue) error {
	if err := checkPolicy(userID, state, due); err != nil {
		return fmt.Errorf("memory: put policy: %w", err)
	}
	s := w.s
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.fences.Check(w.scope, w.epoch); err != nil {
		return err
	}
	sp := s.scopePolicy(w.scope)
	for _, d := range due {
		d = normDue(d)
		i, found := slices.BinarySearchFunc(sp.due, d, comparePolicyDue)
		if !found {
			sp.due = slices.Insert(sp.due, i, d)
		}
	}
	if len(state) == 0 {
		delete(s.policies, userID)
	} else {
		s.policies[userID] = slices.Clone(state)
	}
	return nil
}

// SetPolicyCursor implements store.Writer; it drops the entries at or
// before the new cursor.
func (w *writer) SetPolicyCursor(ctx context.Context, cur store.PolicyDue) error {
	s := w.s
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.fences.Check(w.scope, w.epoch); err != nil {
		return err
	}
	cur = normDue(cur)
	sp := s.scopePolicy(w.scope)
	if !sp.cursor.Less(cur) {
		return nil
	}
	sp.cursor = cur
	i, found := slices.BinarySearchFunc(sp.due, cur, comparePolicyDue)
	if found {
		i++
	}
	sp.due = slices.Delete(sp.due, 0, i)
	return nil
}

func comparePolicyDue(a, b store.PolicyDue) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// PolicyState implements store.Policies.
func (s *Store) PolicyState(ctx context.Context, userID string) ([]byte, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return slices.Clone(s.policies[userID]), nil
}

// PolicyDue implements store.Policies.
func (s *Store) PolicyDue(ctx context.Context, scope string, after store.PolicyDue, until time.Time, limit int) ([]store.PolicyDue, error) {
	if err := store.ValidateScope(scope); err != nil {
		return nil, err
	}
	if limit < 1 || limit > 10_000 {
		return nil, &herald.ValidationError{Field: "limit", Reason: "must be 1 to 10000"}
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	sp, ok := s.policyDue[scope]
	if !ok {
		return []store.PolicyDue{}, nil
	}
	after = normDue(after)
	i, found := slices.BinarySearchFunc(sp.due, after, comparePolicyDue)
	if found {
		i++
	}
	out := []store.PolicyDue{}
	for ; i < len(sp.due) && len(out) < limit; i++ {
		if sp.due[i].At.After(until) {
			break
		}
		out = append(out, sp.due[i])
	}
	return out, nil
}

// PolicyCursor implements store.Policies.
func (s *Store) PolicyCursor(ctx context.Context, scope string) (store.PolicyDue, error) {
	if err := store.ValidateScope(scope); err != nil {
		return store.PolicyDue{}, err
	}
	if err := s.lock(ctx); err != nil {
		return store.PolicyDue{}, err
	}
	defer s.mu.Unlock()
	if sp, ok := s.policyDue[scope]; ok {
		return sp.cursor, nil
	}
	return store.PolicyDue{}, nil
}
