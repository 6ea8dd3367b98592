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
	// It must return soon after ctx ends: the API gives it
	// Config.ProduceTimeout.
	SendEvents(ctx context.Context, events []herald.Event) error
}

// maxBodyBytes bounds a POST /v1/events body: a full batch of maximal
// events plus the envelope.
func (s *Server) maxBodyBytes() int64 {
	return int64(s.cfg.MaxBatch)*herald.MaxEventBytes + 64<<10
}

// readEvents reads a POST /v1/events body (readBudgeted).
func (s *Server) readEvents(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	return s.readBudgeted(w, r, s.maxBodyBytes())
}

// readBudgeted reads a body of at most limit bytes, charging its bytes to
// the intake budget: a known Content-Length up front (refused at once when
// it does not fit), a chunked body as it arrives. release gives the bytes
// back; call it when the request ends, whatever err is.
func (s *Server) readBudgeted(w http.ResponseWriter, r *http.Request, limit int64) (body []byte, release func(), err error) {
	if r.ContentLength > limit {
		return nil, func() {}, errTooLarge{limit}
	}
	if n := r.ContentLength; n > 0 {
		if !s.intake.take(n) {
			return nil, func() {}, errBusy{}
		}
		body, err = readBody(w, r, limit)
		return body, func() { s.intake.give(n) }, err
	}
	br := &budgetReader{r: http.MaxBytesReader(w, r.Body, limit), b: s.intake}
	body, err = io.ReadAll(br)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errTooLarge{mbe.Limit}
	}
	return body, func() { s.intake.give(br.held) }, err
}

// postEvents validates one event or {"events":[…]} and hands the decoded
// events to Config.Events (herald.events, keyed by user id, or by event id
// for one addressed to user_ids or an audience); 202 only once
// Kafka acknowledged every record (acks=all). A batch is all-or-nothing at
// validation; if producing fails part way the caller retries the whole
// batch and the enricher deduplicates by event id.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	key := auth.AuthorizationBearer(r)
	if key == "" {
		unauthorized(w, false, "missing API key: send Authorization: Bearer <key>")
		return
	}
	if s.cfg.Keys == nil || !s.cfg.Keys.Valid(key) {
		unauthorized(w, true, "invalid API key")
		return
	}
	s.acceptEvents(w, r, key)
}

// acceptEvents is POST /v1/events once the caller is known to hold key
// (rate limits are per key): every step after authentication.
func (s *Server) acceptEvents(w http.ResponseWriter, r *http.Request, key string) {
	if s.cfg.Events == nil {
		retryAfter(w, time.Minute)
		writeError(w, http.StatusServiceUnavailable, "", "event intake is not configured on this server")
		return
	}
	body, release, err := s.readEvents(w, r)
	defer release()
	if err != nil {
		if errors.As(err, new(errBusy)) {
			retryAfter(w, time.Second)
			writeError(w, http.StatusServiceUnavailable, "", "event intake is busy (in-flight bytes at their bound), retry")
			return
		}
		bodyError(w, err)
		return
	}
	raws, field, err := s.splitEvents(body)
	if err != nil {
		s.m.eventsRejected.Inc()
		writeError(w, http.StatusBadRequest, field, err.Error())
		return
	}
	now := s.cfg.Now()
	switch v, wait := s.keys.allow(key, len(raws), now); v {
	case never:
		l := s.cfg.EventsPerKey
		writeError(w, http.StatusRequestEntityTooLarge, "events", fmt.Sprintf(
			"%d events can never pass this API key's rate limit (%g events/s, bursts of %d): send at most %d per request",
			len(raws), l.Rate, l.Burst, l.Burst))
		return
	case later:
		retryAfter(w, wait)
		writeError(w, http.StatusTooManyRequests, "", fmt.Sprintf(
			"rate limit exceeded: these %d events fit after %s", len(raws), wait.Round(time.Millisecond)))
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
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ProduceTimeout)
	err = s.cfg.Events.SendEvents(ctx, events)
	cancel()
	if err != nil {
		s.log.Warn("producing events failed", "err", err, "count", len(events))
		// Some events may be in Kafka: the answer is 503 for the whole
		// request, which is safe to retry because the enricher
		// deduplicates by event id.
		const retry = "none of these events is accepted: retry the whole request with the same event ids (the enricher deduplicates by id, so events that did reach Kafka are not delivered twice)"
		retryAfter(w, time.Second)
		if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
			writeError(w, http.StatusServiceUnavailable, "", fmt.Sprintf("Kafka did not acknowledge within %s; %s", s.cfg.ProduceTimeout, retry))
			return
		}
		writeError(w, http.StatusServiceUnavailable, "", "could not hand the events to Kafka ("+err.Error()+"); "+retry)
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
