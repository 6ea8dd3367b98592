//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// apiClient bounds every call of apiDo: a role that stops answering fails
// the test instead of hanging it (the bound is generous: a members call
// of 10,000 ids is that many store transactions).
var apiClient = &http.Client{Timeout: 2 * time.Minute}

// apiDo calls the API role and decodes its JSON answer.
func apiDo(t *testing.T, p *proc, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestAPIRoleEndToEnd drives the API role as a separate process: events
// posted over HTTP reach a socket on a gateway; the inbox, preferences and
// read state work on Cassandra; a preference change reaches the enricher
// (through the Redis preference cache, which the API invalidates); a read
// over HTTP reaches the socket through Redis.
func TestAPIRoleEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.start("enricher", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher")
	gw := e.start("gateway", "gateway", "HERALD_GATEWAY_ID="+e.prefix+"gw")
	api := e.start("api", "api", "HERALD_GATEWAY_ID="+e.prefix+"api")
	user := e.u("h-1")
	tok := token(t, user)

	ws := dial(t, gw, user, "")
	ws.untilSynced(t)
	// Warm the enricher's preference cache with the defaults.
	post := func(body string) {
		t.Helper()
		if code, m := apiDo(t, api, "POST", "/v1/events", apiKey, body); code != 202 {
			t.Fatalf("POST /v1/events: %d %v", code, m)
		}
	}
	post(`{"id":"h1","user_id":"` + user + `","type":"like","title":"one"}`)
	if f := ws.next(t); f.Notification.EventID != "h1" || f.Notification.Seq != 1 {
		t.Fatalf("first: %+v", f)
	}
	// Mute likes: the next like is dropped, the mention goes through.
	if code, m := apiDo(t, api, "PUT", "/v1/preferences", tok, `{"muted_types":["like"]}`); code != 200 {
		t.Fatalf("PUT /v1/preferences: %d %v", code, m)
	}
	post(`{"events":[{"id":"h2","user_id":"` + user + `","type":"like"},{"id":"h3","user_id":"` + user + `","type":"mention"}]}`)
	if f := ws.next(t); f.Notification.EventID != "h3" || f.Notification.Seq != 2 || f.Notification.Prev != 1 {
		t.Fatalf("after muting likes: %+v", f)
	}
	// The inbox from Cassandra through the API.
	code, m := apiDo(t, api, "GET", "/v1/notifications?after=0", tok, "")
	ns, _ := m["notifications"].([]any)
	if code != 200 || len(ns) != 2 || m["next"] != float64(2) {
		t.Fatalf("GET /v1/notifications: %d %v", code, m)
	}
	// A read over HTTP reaches the socket on the gateway (Redis fan-out).
	if code, m := apiDo(t, api, "POST", "/v1/notifications/read", tok, `{"seqs":[1]}`); code != 200 || m["unread"] != float64(1) {
		t.Fatalf("read: %d %v", code, m)
	}
	if f := ws.next(t); f.Type != "unread" || f.Count != 1 {
		t.Fatalf("unread frame: %+v", f)
	}
	// Bad input gets the contract's errors.
	if code, m := apiDo(t, api, "POST", "/v1/events", apiKey, `{"id":"x","type":"t"}`); code != 400 || m["field"] != "user_id" {
		t.Fatalf("invalid event: %d %v", code, m)
	}
	if code, _ := apiDo(t, api, "GET", "/v1/notifications", "not-a-token", ""); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	for _, p := range []*proc{api, gw} {
		if scrape(t, p, "herald_http_requests_total")+scrape(t, p, "herald_connections") == 0 {
			t.Fatalf("%s: no metrics", p.name)
		}
	}
}
