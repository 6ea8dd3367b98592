package pushfake

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Provider names a push provider in a Record.
type Provider string

// The providers the fakes stand in for.
const (
	APNs Provider = "apns"
	FCM  Provider = "fcm"
)

// Record is one request a fake received and what it answered. Its JSON is
// the element of `herald dev`'s GET /v1/dev/pushes list.
type Record struct {
	Provider Provider `json:"provider"`
	// Token is the device token: the path segment for APNs, message.token
	// for FCM ("" for a topic or condition send).
	Token string `json:"token"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
	// Reason is Apple's reason string or FCM's error code (the FcmError
	// errorCode, else the status name); "" on success.
	Reason string `json:"reason"`
	// Headers are the request's provider headers (APNs: apns-*, with the
	// apns-id answered; FCM: none but the API format version). Never the
	// authorization header.
	Headers map[string]string `json:"headers"`
	// Payload is the request body as sent when it is JSON (APNs: the
	// notification; FCM: {"message":…,"validate_only":…}), else null.
	Payload json.RawMessage `json:"payload"`
	// At is when the request arrived.
	At time.Time `json:"at"`
}

// DefaultRecordLimit is how many records the ring keeps when
// Config.RecordLimit is 0.
const DefaultRecordLimit = 10000

// recorder is a bounded ring of Records in arrival order.
type recorder struct {
	mu    sync.Mutex
	buf   []Record
	next  int // index the next record goes to
	full  bool
	total uint64
}

func newRecorder(limit int) *recorder {
	return &recorder{buf: make([]Record, limit)}
}

func (r *recorder) add(rec Record) {
	r.mu.Lock()
	r.buf[r.next] = rec
	r.next++
	if r.next == len(r.buf) {
		r.next = 0
		r.full = true
	}
	r.total++
	r.mu.Unlock()
}

// snapshot returns the kept records, oldest first, those for which keep is
// true (all when keep is nil).
func (r *recorder) snapshot(keep func(*Record) bool) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Record, 0, r.lenLocked())
	visit := func(recs []Record) {
		for i := range recs {
			if keep == nil || keep(&recs[i]) {
				out = append(out, recs[i])
			}
		}
	}
	if r.full {
		visit(r.buf[r.next:])
	}
	visit(r.buf[:r.next])
	return out
}

func (r *recorder) lenLocked() int {
	if r.full {
		return len(r.buf)
	}
	return r.next
}

func (r *recorder) reset() {
	r.mu.Lock()
	clear(r.buf)
	r.next, r.full = 0, false
	r.mu.Unlock()
}

func (r *recorder) count() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// pushesHandler serves GET with {"pushes":[Record…]} in arrival order.
type pushesHandler struct{ rec *recorder }

func (h pushesHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := json.Marshal(struct {
		Pushes []Record `json:"pushes"`
	}{h.rec.snapshot(nil)})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}
