package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// sendServer records the events POSTed to /v1/events and accepts them.
func sendServer(t *testing.T) (url string, got func() []map[string]any) {
	t.Helper()
	var (
		mu     sync.Mutex
		events []map[string]any
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" || r.Header.Get("Authorization") != "Bearer k1" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"accepted":1}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), events...)
	}
}

func TestSendAddressing(t *testing.T) {
	url, got := sendServer(t)
	for _, tc := range []struct {
		flags []string
		key   string
		want  any
	}{
		{[]string{"--user", "ada"}, "user_id", "ada"},
		{[]string{"--users", "ada, bob,,cy"}, "user_ids", []any{"ada", "bob", "cy"}},
		{[]string{"--audience", "team:42"}, "audience", "team:42"},
	} {
		args := append([]string{"send", "--url", url, "--api-keys", "k1", "--id", "e1"}, tc.flags...)
		code, out, errOut := run(t, nil, args...)
		if code != 0 || !strings.Contains(out, "202") {
			t.Fatalf("%v: exit %d, out %q, stderr %q", tc.flags, code, out, errOut)
		}
		evs := got()
		ev := evs[len(evs)-1]
		if !reflect.DeepEqual(ev[tc.key], tc.want) || ev["id"] != "e1" || ev["type"] != "test" {
			t.Fatalf("%v: sent %v", tc.flags, ev)
		}
		for _, other := range []string{"user_id", "user_ids", "audience"} {
			if _, ok := ev[other]; ok && other != tc.key {
				t.Fatalf("%v: sent %s too: %v", tc.flags, other, ev)
			}
		}
	}
}

func TestSendAddressingErrors(t *testing.T) {
	url, got := sendServer(t)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "one of --user, --users or --audience is required"},
		{[]string{"--user", "ada", "--users", "a,b"}, "--user and --users are mutually exclusive"},
		{[]string{"--user", "ada", "--audience", "t"}, "--user and --audience are mutually exclusive"},
		{[]string{"--users", "a", "--audience", "t"}, "--users and --audience are mutually exclusive"},
		{[]string{"--users", " , "}, `--users=" , ": no user ids`},
	} {
		args := append([]string{"send", "--url", url, "--api-keys", "k1"}, tc.flags...)
		code, _, errOut := run(t, nil, args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tc.flags, code, errOut, tc.want)
		}
	}
	if n := len(got()); n != 0 {
		t.Fatalf("%d events sent by refused commands", n)
	}
	code, out, _ := run(t, nil, "send", "-h")
	for _, want := range []string{"--users", "--audience"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("send -h lacks %s:\n%s", want, out)
		}
	}
}
