package policy

import (
	"encoding/json"
	"strconv"
	"time"

	herald "github.com/heraldhq/herald"
)

// DigestIDPrefix starts the event id of every digest: "herald-digest-<n>",
// n the window number, unique per user (the inbox deduplicates by event
// id, so a number is never reused).
const DigestIDPrefix = "herald-digest-"

// digestData is the data of a digest event: {"digest":{...}}.
type digestData struct {
	Digest digestBody `json:"digest"`
}

type digestBody struct {
	Count    int      `json:"count"`
	Key      string   `json:"key"`
	FirstAt  string   `json:"first_at"`
	LastAt   string   `json:"last_at"`
	EventIDs []string `json:"event_ids"`
	Titles   []string `json:"titles"`
}

// digestEvent is the event closing w at nowUS makes for user, its title
// rendered from title (nil: the default).
func digestEvent(user string, w *Window, title titleTemplate, nowUS int64) herald.Event {
	newest := w.Type
	if len(w.Titles) > 0 {
		newest = w.Titles[0]
	}
	return herald.Event{
		ID:          DigestIDPrefix + strconv.FormatUint(w.N, 10),
		UserID:      user,
		Type:        w.Type,
		Priority:    herald.PriorityNormal,
		Title:       title.render(newest, w.Count),
		Body:        w.Body,
		Data:        digestJSON(w),
		CollapseKey: w.Key,
		CreatedAt:   fromMicros(nowUS),
	}
}

// digestJSON encodes the data of w's digest, at most herald.MaxDataBytes
// as encoding/json writes it (with HTML escaping, the larger form): the
// oldest titles, then the oldest event ids, are left out until it fits.
// Without lists it always fits (a key of 256 characters escapes to at most
// 1,536 bytes).
func digestJSON(w *Window) json.RawMessage {
	d := digestData{Digest: digestBody{
		Count:    w.Count,
		Key:      w.Key,
		FirstAt:  fromMicros(w.First).Format(time.RFC3339Nano),
		LastAt:   fromMicros(w.Last).Format(time.RFC3339Nano),
		EventIDs: append([]string{}, w.IDs...),
		Titles:   append([]string{}, w.Titles...),
	}}
	for {
		b, err := json.Marshal(d)
		if err != nil {
			// Strings and ints only: cannot happen.
			panic("policy: encoding a digest: " + err.Error())
		}
		switch body := &d.Digest; {
		case len(b) <= herald.MaxDataBytes:
			return b
		case len(body.Titles) > 0:
			body.Titles = body.Titles[:len(body.Titles)-1]
		case len(body.EventIDs) > 0:
			body.EventIDs = body.EventIDs[:len(body.EventIDs)-1]
		default:
			return b
		}
	}
}
