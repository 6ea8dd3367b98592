package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
)

// EventSink hands accepted events to herald.events; pipeline.EventWriter
// implements it over a Kafka client.
type EventSink interface {
	// SendEvents returns nil only once every event is durably
	// acknowledged by Kafka (acks=all). On error some events may have been
	// written and others not: all or nothing is not promised. The enricher
	// deduplicates by event id, so the caller may retry the whole batch.
	SendEvents(ctx context.Context, events []herald.Event) error
}

// maxBodyBytes bounds a POST /v1/events body: a full batch of maximal
// events plus the envelope.
func (s *Server) maxBodyBytes() int64 {
	return int64(s.cfg.MaxBatch)*herald.MaxEventBytes + 64<<10
}

// postEvents validates one event or {"events":[…]} and hands the decoded
// events to Config.Events (herald.events, keyed by user id); 202 only once
// Kafka acknowledged every record (acks=all). A batch is all-or-nothing at
// validation; if producing fails part way the caller retries the whole
// batch and the enricher deduplicates by event id.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	key := auth.AuthorizationBearer(r)
	if key == "" {
		writeError(w, http.StatusUnauthorized, "", "missing API key: send Authorization: Bearer <key>")
		return
	}
	if s.cfg.Keys == nil || !s.cfg.Keys.Valid(key) {
		writeError(w, http.StatusUnauthorized, "", "invalid API key")
		return
	}
	if s.cfg.Events == nil {
		writeError(w, http.StatusServiceUnavailable, "", "event intake is not configured on this server")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBodyBytes()))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("body larger than %d bytes", mbe.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, "", "reading body: "+err.Error())
		return
	}
	raws, field, err := s.splitEvents(body)
	if err != nil {
		s.m.eventsRejected.Inc()
		writeError(w, http.StatusBadRequest, field, err.Error())
		return
	}
	now := s.cfg.Now()
	if ok, wait := s.keys.allow(key, len(raws), now); !ok {
		tooMany(w, wait)
		return
	}
	// Without a created_at the event takes the time it was received,
	// at the millisecond precision of a Kafka record timestamp.
	received := now.Truncate(time.Millisecond)
	events := make([]herald.Event, len(raws))
	for i, raw := range raws {
		ev, err := herald.DecodeEvent(raw, received)
		if err != nil {
			s.m.eventsRejected.Inc()
			ve, _ := herald.AsValidationError(err)
			f := ve.Field
			if len(raws) > 1 || field == "events" {
				f = fmt.Sprintf("events[%d]", i) + dotted(f)
			}
			writeError(w, http.StatusBadRequest, f, err.Error())
			return
		}
		events[i] = ev
	}
	if err := s.cfg.Events.SendEvents(r.Context(), events); err != nil {
		s.log.Warn("producing events failed", "err", err, "count", len(events))
		writeError(w, http.StatusServiceUnavailable, "", "could not hand the events to Kafka, retry: "+err.Error())
		return
	}
	s.m.eventsIn.Add(float64(len(events)))
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(events)})
}

func dotted(f string) string {
	if f == "" {
		return ""
	}
	return "." + f
}

// splitEvents returns the raw events of a single-event or batch body. The
// returned field names what is wrong when err is not nil.
func (s *Server) splitEvents(body []byte) ([]json.RawMessage, string, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, "", errors.New("empty body: send one event or {\"events\":[…]}")
	}
	if trimmed[0] != '{' {
		return nil, "", errors.New("body must be a JSON object: one event or {\"events\":[…]}")
	}
	var probe struct {
		Events json.RawMessage `json:"events"`
		ID     json.RawMessage `json:"id"`
	}
	// A batch has "events" and no "id". Anything else, invalid JSON
	// included, goes to the event decoder, which reports the precise problem.
	batch := json.Unmarshal(trimmed, &probe) == nil && probe.Events != nil && probe.ID == nil
	if !batch {
		return []json.RawMessage{trimmed}, "", nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(probe.Events, &raws); err != nil {
		return nil, "events", errors.New("events must be an array of event objects")
	}
	if len(raws) == 0 {
		return nil, "events", errors.New("events must not be empty")
	}
	if len(raws) > s.cfg.MaxBatch {
		return nil, "events", fmt.Errorf("%d events, more than the %d allowed in one request", len(raws), s.cfg.MaxBatch)
	}
	for i := range raws {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raws[i]); err == nil {
			raws[i] = buf.Bytes()
		}
	}
	return raws, "events", nil
}
