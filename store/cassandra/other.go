package cassandra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
)

// GetPreferences implements store.Preferences.
func (s *Store) GetPreferences(ctx context.Context, userID string) (herald.Preferences, error) {
	if err := checkUserID(userID); err != nil {
		return herald.Preferences{}, err
	}
	if err := s.begin(ctx); err != nil {
		return herald.Preferences{}, err
	}
	var raw string
	err := s.read(s.q.getPrefs, userID).ScanContext(ctx, &raw)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return herald.DefaultPreferences(), nil
	case err != nil:
		return herald.Preferences{}, s.fail("get preferences", err)
	}
	var p herald.Preferences
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return herald.Preferences{}, fmt.Errorf("%w: preferences of user %q: %w", ErrCorrupt, userID, err)
	}
	if p.MutedTypes == nil {
		p.MutedTypes = []string{}
	}
	return p, nil
}

// PutPreferences implements store.Preferences. p is validated (and
// normalised) on a copy; an invalid p returns its *herald.ValidationError.
func (s *Store) PutPreferences(ctx context.Context, userID string, p herald.Preferences) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	p = p.Clone() // Validate normalises in place
	if err := p.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("cassandra: encode preferences: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	if err := s.read(s.q.putPrefs, userID, string(raw), time.Now()).ExecContext(ctx); err != nil {
		return s.fail("put preferences", err)
	}
	return nil
}
