package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/delivery/push/pushfake"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/store/memory"
	"github.com/heraldhq/herald/topics"
)

// The tests below keep openapi.json honest: it must be a well-formed
// OpenAPI 3.1 document, list exactly the routes New registers (read from
// server.go's source and confirmed by probing the live server), and the
// server's real responses must fit the schemas it documents.

// spec is openapi.json decoded with json.Number, so numbers compare exactly.
func spec(t *testing.T) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(openAPI))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return doc
}

// specServer is the fixture of server_test.go plus a real WebSocket
// gateway mounted at /v1/ws, as `herald dev` does.
func specServer(t *testing.T) *fixture {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "herald.events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := memory.New()
	gw, err := delivery.New(delivery.Config{Store: st, Verifier: tokens{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: withSubs(st), Events: pipeline.NewEventWriter(cl, topics.Names{}), Users: tokens{}, Keys: keys{}, Unread: gw, WebSocket: gw, SSE: gw.SSE(), Waiter: gw,
		DevPushes: devPushes{}, DevJWTSecret: []byte("0123456789abcdef0123456789abcdef"), DevAPIKey: "key-dev", Ready: []ReadyCheck{{Name: "store", Check: st.Ping}}, ReadyInterval: 5 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, s)
	waitReadyz(t, s, "", func(r readyzReply) bool { return r.code == http.StatusOK })
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // runs before srv.Close
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
	})
	return &fixture{srv: srv, store: st, client: cl}
}

// reply is a response with its body read.
type reply struct {
	code   int
	header http.Header
	raw    []byte
}

// call sends one request and reads the whole response.
func call(t *testing.T, base, method, path, auth, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, raw}
}

// operations lists the spec's (path, METHOD) pairs.
func operations(doc map[string]any) map[string][]string {
	out := map[string][]string{}
	for path, item := range doc["paths"].(map[string]any) {
		for m := range item.(map[string]any) {
			switch m {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				out[path] = append(out[path], strings.ToUpper(m))
			}
		}
		sort.Strings(out[path])
	}
	return out
}

// concrete fills a path template's wildcards.
func concrete(path string) string {
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "probe")
}

func TestOpenAPIDocument(t *testing.T) {
	doc := spec(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	if info, _ := doc["info"].(map[string]any); info["title"] == nil || info["version"] == nil {
		t.Fatalf("info needs title and version: %v", info)
	}
	// Every $ref (and discriminator mapping) resolves inside the document.
	refs := 0
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs++
					if _, err := resolve(doc, s); err != nil {
						t.Errorf("%s: %v", at, err)
					}
				}
				if m, ok := x.(map[string]any); ok && k == "mapping" {
					for name, target := range m {
						if _, err := resolve(doc, target.(string)); err != nil {
							t.Errorf("%s/mapping/%s: %v", at, name, err)
						}
					}
				}
				walk(x, at+"/"+k)
			}
		case []any:
			for i, x := range v {
				walk(x, at+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(doc, "#")
	if refs == 0 {
		t.Fatal("no $ref found: the walk is broken")
	}
	// Operations: unique ids, documented responses, declared path wildcards,
	// and a security requirement (possibly empty) on every one.
	ids := map[string]string{}
	for path, methods := range operations(doc) {
		for _, m := range methods {
			op := doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(m)].(map[string]any)
			where := m + " " + path
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] != "" {
				t.Errorf("%s: operationId %q missing or shared with %s", where, id, ids[id])
			}
			ids[id] = where
			if rs, _ := op["responses"].(map[string]any); len(rs) == 0 {
				t.Errorf("%s: no responses", where)
			}
			if _, ok := op["security"].([]any); !ok {
				t.Errorf("%s: no security requirement (use [] for none)", where)
			}
			for _, w := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				found := false
				for _, p := range asSlice(op["parameters"]) {
					p, _ := deref(doc, p).(map[string]any)
					found = found || (p["in"] == "path" && p["name"] == w[1] && p["required"] == true)
				}
				if !found {
					t.Errorf("%s: path parameter %s not declared as required", where, w[1])
				}
			}
		}
	}
	// Every example in the components fits its own schema.
	v := validator{doc}
	for name, s := range doc["components"].(map[string]any)["schemas"].(map[string]any) {
		exs, _ := s.(map[string]any)["examples"].([]any)
		for i, ex := range exs {
			if errs := v.check(s, ex, "#"); len(errs) > 0 {
				t.Errorf("schema %s example %d: %v", name, i, errs)
			}
		}
	}
}

// TestOpenAPIRoutes checks both directions: every operation of the spec is
// served, and every route New registers is in the spec with the same
// methods. The routes are read from server.go's source and the methods
// confirmed by the live server's 405 Allow header.
func TestOpenAPIRoutes(t *testing.T) {
	doc := spec(t)
	f := specServer(t)
	ops := operations(doc)

	// Spec → server: no "no route" 404, no 405.
	for path, methods := range ops {
		for _, m := range methods {
			r := call(t, f.srv.URL, m, concrete(path), "", "")
			if r.code == http.StatusMethodNotAllowed ||
				(r.code == http.StatusNotFound && bytes.Contains(r.raw, []byte("no route"))) {
				t.Errorf("%s %s (spec) is not served: %d %s", m, path, r.code, r.raw)
			}
		}
	}

	// Server → spec: the paths registered in New, from the source.
	registered := routesInNew(t)
	var paths []string
	for p := range registered {
		paths = append(paths, p)
	}
	for p := range ops {
		if _, ok := registered[p]; !ok {
			t.Errorf("spec path %s is not registered in server.go's New", p)
		}
	}
	for _, p := range paths {
		want, ok := ops[p]
		if !ok {
			t.Errorf("route %s (server.go) is missing from openapi.json", p)
			continue
		}
		if src := registered[p]; src != nil && !slices.Equal(src, want) {
			t.Errorf("%s: server.go registers %v, spec has %v", p, src, want)
		}
		// A method the spec does not list must be refused with the Allow
		// header naming exactly the spec's methods.
		probe := ""
		for _, m := range []string{"PATCH", "TRACE", "OPTIONS", "PUT", "POST", "DELETE", "GET"} {
			if !slices.Contains(want, m) {
				probe = m
				break
			}
		}
		r := call(t, f.srv.URL, probe, concrete(p), "", "")
		if r.code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s, want 405", probe, p, r.code, r.raw)
			continue
		}
		var allowed []string
		for _, m := range strings.Split(r.header.Get("Allow"), ",") {
			allowed = append(allowed, strings.TrimSpace(m))
		}
		sort.Strings(allowed)
		if !slices.Equal(allowed, want) {
			t.Errorf("%s: server allows %v, spec has %v", p, allowed, want)
		}
	}
}

// routesInNew returns the paths New registers, with their methods when
// they are spelled out in a s.route call (nil for handlers mounted whole,
// such as /v1/ws). The catch-all "/" is left out.
func routesInNew(t *testing.T) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "server.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, d := range file.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv != nil || fn.Name.Name != "New" {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			ce, ok := n.(*ast.CallExpr)
			if !ok || len(ce.Args) < 2 {
				return true
			}
			sel, ok := ce.Fun.(*ast.SelectorExpr)
			lit, ok2 := ce.Args[0].(*ast.BasicLit)
			if !ok || !ok2 || lit.Kind != token.STRING {
				return true
			}
			path, _ := strconv.Unquote(lit.Value)
			switch sel.Sel.Name {
			case "route":
				var methods []string
				if cl, ok := ce.Args[1].(*ast.CompositeLit); ok {
					for _, e := range cl.Elts {
						if kv, ok := e.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.SelectorExpr); ok {
								methods = append(methods, strings.ToUpper(strings.TrimPrefix(k.Sel.Name, "Method")))
							}
						}
					}
				}
				sort.Strings(methods)
				out[path] = methods
			case "Handle", "HandleFunc":
				if path != "/" {
					out[path] = nil
				}
			}
			return true
		})
	}
	if len(out) < 10 {
		t.Fatalf("found only %d routes in server.go's New: %v", len(out), out)
	}
	return out
}

// TestOpenAPIResponses sends real requests and checks that each status is
// documented for its operation, the content type is the documented one, the
// body has what the schema requires, and request bodies the server accepts
// (or refuses as invalid) are accepted (or refused) by the documented
// request schema.
func TestOpenAPIResponses(t *testing.T) {
	doc := spec(t)
	v := validator{doc}
	f := specServer(t)
	ctx := context.Background()
	var ns []herald.Notification
	for i := range 3 {
		e := herald.Event{ID: fmt.Sprintf("e%d", i), UserID: "u1", Type: "mention", Priority: herald.PriorityHigh,
			Title: "Ada mentioned you", Data: json.RawMessage(`{"url":"/c/1"}`), CreatedAt: time.Now()}
		if i == 0 {
			e.Title, e.Data = "", nil // optional fields absent
		}
		ns = append(ns, herald.NewNotification(&e))
	}
	if _, err := f.appendTo(ctx, ns); err != nil {
		t.Fatal(err)
	}

	const (
		ok      = 0 // no request-schema check
		valid   = 1 // the request body must fit the documented schema
		invalid = 2 // the request body must not fit it
	)
	longTitle := strings.Repeat("é", 257)
	cases := []struct {
		method, path, auth, body string
		code                     int
		req                      int
	}{
		{"POST", "/v1/events", "key-1", `{"id":"e1","user_id":"u-1@x.y:z_1","type":"mention","priority":"high","title":"t","body":"b","data":{"a":1},"collapse_key":"k","created_at":"2026-11-22T10:00:00Z","ttl":60,"extra":true}`, 202, valid},
		{"POST", "/v1/events", "key-1", `{"id":"e2","user_id":"u1","type":"t","priority":null,"title":null,"data":null,"ttl":null}`, 202, valid},
		{"POST", "/v1/events", "key-1", `{"events":[{"id":"e3","user_id":"u1","type":"t"},{"id":"e4","user_id":"u2","type":"t"}]}`, 202, valid},
		{"POST", "/v1/events", "", `{"id":"e1","user_id":"u1","type":"t"}`, 401, ok},
		{"POST", "/v1/events", "wrong", `{"id":"e1","user_id":"u1","type":"t"}`, 401, ok},
		{"POST", "/v1/events", "key-1", `{"id":"e1","type":"t"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"","user_id":"u1","type":"t"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"e1","user_id":"u 1","type":"t"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"e1","user_id":"u1","type":"t","priority":"urgent"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"e1","user_id":"u1","type":"t","title":"` + longTitle + `"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"e1","user_id":"u1","type":"t","data":[1]}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"e1","user_id":"u1","type":"t","ttl":-1}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"e1","user_id":"u1","type":"t","created_at":5}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"events":[]}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"events":[{"id":"e1","user_id":"u1","type":"t"},{"id":"e2","type":"t"}]}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"events":[` + strings.Repeat(`{"id":"e","user_id":"u","type":"t"},`, 500) + `{"id":"e","user_id":"u","type":"t"}]}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"e1",`, 400, ok},

		{"GET", "/v1/notifications", "tok-u1", "", 200, ok},
		{"GET", "/v1/notifications?after=1&limit=1&unread_only=true", "tok-u1", "", 200, ok},
		{"GET", "/v1/notifications?after=99", "tok-u1", "", 200, ok},
		{"GET", "/v1/notifications?limit=501", "tok-u1", "", 400, ok},
		{"GET", "/v1/notifications", "", "", 401, ok},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":[1,2]}`, 200, valid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":[],"all":true}`, 200, valid},
		{"POST", "/v1/notifications/read", "tok-u1", `{}`, 400, invalid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"all":false}`, 400, invalid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":"1"}`, 400, invalid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":[1],"bogus":1}`, 400, invalid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"all":true,"seqs":[1]}`, 400, invalid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":[0]}`, 400, invalid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":[]}`, 400, invalid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":[1],"all":false}`, 200, valid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":[` + strings.Repeat("1,", 1000) + `1]}`, 400, invalid},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":[` + strings.Repeat("1,", 40000) + `1]}`, 413, ok},
		{"GET", "/v1/notifications/unread_count", "tok-u1", "", 200, ok},
		{"GET", "/v1/notifications/unread_count", "bad", "", 401, ok},

		{"GET", "/v1/preferences", "tok-u1", "", 200, ok},
		{"PUT", "/v1/preferences", "tok-u1", `{"muted_types":["like","like"],"channels":{"push":false},"quiet_hours":{"start":"22:00","end":"7:00","timezone":"Europe/Paris"}}`, 200, valid},
		{"GET", "/v1/preferences", "tok-u1", "", 200, ok},
		{"PUT", "/v1/preferences", "tok-u1", `{}`, 200, valid},
		{"PUT", "/v1/preferences", "tok-u1", `{"muted_types":null,"channels":null,"quiet_hours":null}`, 200, valid},
		{"PUT", "/v1/preferences", "tok-u1", `{"quiet_hours":{"start":"24:00","end":"07:00"}}`, 400, invalid},
		{"PUT", "/v1/preferences", "tok-u1", `{"quiet_hours":{"start":"22:00"}}`, 400, invalid},
		{"PUT", "/v1/preferences", "tok-u1", `{"muted_types":[""]}`, 400, invalid},
		{"PUT", "/v1/preferences", "tok-u1", `{"channels":{"email":true}}`, 400, invalid},
		{"PUT", "/v1/preferences", "tok-u1", `{"mute":["like"]}`, 400, invalid},

		{"POST", "/v1/devices", "tok-u1", `{"platform":"ios","token":"abc","app_id":"com.example"}`, 201, valid},
		{"POST", "/v1/devices", "tok-u1", `{"platform":"android","token":"def","app_id":"com.example"}`, 201, valid},
		{"POST", "/v1/devices", "tok-u1", `{"platform":"android","token":"def"}`, 400, valid}, // no default app configured
		{"GET", "/v1/devices", "tok-u1", "", 200, ok},
		{"GET", "/v1/devices", "tok-u2", "", 200, ok},
		{"GET", "/v1/devices", "", "", 401, ok},
		{"POST", "/v1/devices", "tok-u1", `{"platform":"windows","token":"t"}`, 400, invalid},
		{"POST", "/v1/devices", "tok-u1", `{"platform":"ios"}`, 400, invalid},
		{"POST", "/v1/devices", "tok-u1", `{"platform":"ios","token":"t","name":"phone"}`, 400, invalid},
		{"POST", "/v1/devices", "tok-u1", `{"platform":"ios","token":"t","app_id":"a"}}`, 400, ok},
		{"DELETE", "/v1/devices/abc", "tok-u1", "", 204, ok},
		{"DELETE", "/v1/devices/abc", "tok-u1", "", 404, ok},
		{"DELETE", "/v1/devices/def", "", "", 401, ok},

		{"POST", "/v1/events", "key-1", `{"id":"b1","user_ids":["u1","u2","u1"],"type":"t"}`, 202, valid},
		{"POST", "/v1/events", "key-1", `{"id":"b2","audience":"team:42","type":"t"}`, 202, valid},
		{"POST", "/v1/events", "key-1", `{"events":[{"id":"b3","audience":"news","type":"t"},{"id":"b4","user_id":"u1","type":"t"}]}`, 202, valid},
		{"POST", "/v1/events", "key-1", `{"id":"b1","user_id":"u1","audience":"news","type":"t"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"b1","user_ids":[],"type":"t"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"b1","user_ids":["a b"],"type":"t"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"b1","user_ids":"u1","type":"t"}`, 400, invalid},
		{"POST", "/v1/events", "key-1", `{"id":"b1","audience":"a/b","type":"t"}`, 400, invalid},

		{"PUT", "/v1/subscriptions/team:42", "tok-u1", "", 201, ok},
		{"PUT", "/v1/subscriptions/team:42", "tok-u1", "", 200, ok},
		{"PUT", "/v1/subscriptions/news", "tok-u1", "", 201, ok},
		{"PUT", "/v1/subscriptions/a%20b", "tok-u1", "", 400, ok},
		{"PUT", "/v1/subscriptions/news", "", "", 401, ok},
		{"GET", "/v1/subscriptions", "tok-u1", "", 200, ok},
		{"GET", "/v1/subscriptions", "tok-u2", "", 200, ok},
		{"GET", "/v1/subscriptions", "bad", "", 401, ok},
		{"DELETE", "/v1/subscriptions/news", "tok-u1", "", 204, ok},
		{"DELETE", "/v1/subscriptions/news", "tok-u1", "", 404, ok},
		{"DELETE", "/v1/subscriptions/a%20b", "tok-u1", "", 400, ok},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{"add":["u2","u3"],"remove":["u9"]}`, 200, valid},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{"add":["u2","u3"],"remove":null}`, 200, valid},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{"remove":["u3"]}`, 200, valid},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{}`, 400, invalid},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{"add":[]}`, 400, invalid},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{"add":["a b"]}`, 400, invalid},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{"add":["a"],"members":["b"]}`, 400, invalid},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{"add":[` + strings.Repeat(`"a",`, 10000) + `"a"]}`, 400, invalid},
		{"POST", "/v1/audiences/team:42/members", "key-1", `{"add":["a"],"pad":"` + strings.Repeat(" ", 2<<20) + `"}`, 413, ok},
		{"POST", "/v1/audiences/team:42/members", "", `{"add":["a"]}`, 401, ok},
		{"POST", "/v1/audiences/a%20b/members", "key-1", `{"add":["a"]}`, 400, ok},
		{"GET", "/v1/audiences/team:42", "key-1", "", 200, ok},
		{"GET", "/v1/audiences/nobody", "key-1", "", 200, ok},
		{"GET", "/v1/audiences/a%20b", "key-1", "", 400, ok},
		{"GET", "/v1/audiences/team:42", "tok-u1", "", 401, ok},

		{"GET", "/v1/ws", "", "", 401, ok},
		{"GET", "/v1/ws?token=bad", "", "", 401, ok},
		{"GET", "/v1/ws?after=x", "tok-u1", "", 400, ok},
		{"GET", "/v1/ws?token=tok-u1", "", "", 400, ok}, // not a WebSocket handshake
		{"GET", "/v1/sse", "", "", 401, ok},
		{"GET", "/v1/sse?token=bad", "", "", 401, ok},
		{"GET", "/v1/sse?after=x", "tok-u1", "", 400, ok},
		{"GET", "/v1/notifications?wait=61", "tok-u1", "", 400, ok},
		{"GET", "/v1/notifications?wait=-1", "tok-u1", "", 400, ok},
		{"GET", "/v1/notifications?after=1&wait=60", "tok-u1", "", 200, ok}, // u1 has notifications after 1: at once

		{"GET", "/healthz", "", "", 200, ok},
		{"HEAD", "/healthz", "", "", 200, ok},
		{"GET", "/readyz", "", "", 200, ok},
		{"HEAD", "/readyz", "", "", 200, ok},
		{"GET", "/readyz?verbose", "", "", 200, ok},
		{"GET", "/readyz?verbose=1", "", "", 200, ok},
		{"GET", "/metrics", "", "", 200, ok},
		{"GET", "/v1/openapi.json", "", "", 200, ok},
		{"GET", "/v1/dev/pushes", "", "", 200, ok},
		{"POST", "/v1/dev/token", "", `{"user_id":"ada"}`, 200, valid},
		{"POST", "/v1/dev/token", "", `{"user_id":"a da"}`, 400, invalid},
		{"POST", "/v1/dev/token", "", `{"user":"ada"}`, 400, invalid},
		{"POST", "/v1/dev/events", "", `{"id":"e-dev","user_id":"ada","type":"mention","title":"Hi"}`, 202, valid},
		{"POST", "/v1/dev/events", "", `{"events":[{"id":"e-dev2","user_id":"ada","type":"t"}]}`, 202, valid},
		{"POST", "/v1/dev/events", "", `{"id":"e-dev3","user_id":"ada"}`, 400, invalid},
	}
	for _, c := range cases {
		name := c.method + " " + c.path + " " + c.body
		if len(name) > 120 {
			name = name[:120]
		}
		t.Run(name, func(t *testing.T) {
			r := call(t, f.srv.URL, c.method, c.path, c.auth, c.body)
			if r.code != c.code {
				t.Fatalf("status %d, want %d: %s", r.code, c.code, r.raw)
			}
			path, _, _ := strings.Cut(c.path, "?")
			tmpl := path
			switch {
			case strings.HasPrefix(path, "/v1/devices/"):
				tmpl = "/v1/devices/{token}"
			case strings.HasPrefix(path, "/v1/subscriptions/"):
				tmpl = "/v1/subscriptions/{topic}"
			case strings.HasPrefix(path, "/v1/audiences/") && strings.HasSuffix(path, "/members"):
				tmpl = "/v1/audiences/{topic}/members"
			case strings.HasPrefix(path, "/v1/audiences/"):
				tmpl = "/v1/audiences/{topic}"
			}
			op := operation(t, doc, tmpl, c.method)
			checkResponse(t, v, op, r)
			if c.req != ok {
				schema := deref(doc, dig(op, "requestBody", "content", "application/json", "schema"))
				if schema == nil {
					t.Fatal("no documented request schema")
				}
				errs := v.check(schema, decode(t, []byte(c.body)), "#")
				if c.req == valid && len(errs) > 0 {
					t.Errorf("the server accepted a body the spec refuses: %v", errs)
				}
				if c.req == invalid && len(errs) == 0 {
					t.Errorf("the server refused a body the spec accepts")
				}
			}
		})
	}

	// The served document is the embedded one.
	r := call(t, f.srv.URL, "GET", "/v1/openapi.json", "", "")
	if !bytes.Equal(r.raw, openAPI) || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %s, %d bytes", r.header.Get("Content-Type"), len(r.raw))
	}
	// The shared responses: unknown route, wrong method.
	r = call(t, f.srv.URL, "GET", "/v1/nope", "", "")
	if r.code != 404 {
		t.Fatalf("unknown route: %d", r.code)
	}
	checkBody(t, v, deref(doc, "#/components/responses/NotFound"), r)
	for _, p := range []string{"/v1/events", "/v1/ws", "/v1/sse", "/metrics"} {
		r = call(t, f.srv.URL, "PATCH", p, "", "")
		if r.code != 405 || r.header.Get("Allow") == "" {
			t.Fatalf("PATCH %s: %d, Allow %q", p, r.code, r.header.Get("Allow"))
		}
		checkBody(t, v, deref(doc, "#/components/responses/MethodNotAllowed"), r)
	}

	// 503s: event intake without a producer, readiness with a closed store.
	bare, err := New(Config{Store: memory.New(), Users: tokens{}, Keys: keys{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	bareSrv := httptest.NewServer(bare)
	defer bareSrv.Close()
	r = call(t, bareSrv.URL, "POST", "/v1/events", "key-1", `{"id":"e","user_id":"u","type":"t"}`)
	if r.code != 503 {
		t.Fatalf("events without producer: %d %s", r.code, r.raw)
	}
	checkResponse(t, v, operation(t, doc, "/v1/events", "POST"), r)
	_ = f.store.Close()
	waitReadyz(t, f.srv.Config.Handler, "", func(r readyzReply) bool { return r.code == 503 })
	for _, q := range []string{"", "?verbose"} {
		r = call(t, f.srv.URL, "GET", "/readyz"+q, "", "")
		if r.code != 503 {
			t.Fatalf("readyz%s with a closed store: %d %s", q, r.code, r.raw)
		}
		checkResponse(t, v, operation(t, doc, "/readyz", "GET"), r)
	}
	r = call(t, f.srv.URL, "GET", "/v1/notifications/unread_count", "tok-u1", "")
	if r.code != 503 {
		t.Fatalf("unread_count with a closed store: %d %s", r.code, r.raw)
	}
	checkResponse(t, v, operation(t, doc, "/v1/notifications/unread_count", "GET"), r)
}

// TestOpenAPIWebSocket opens /v1/ws and checks the 101 and the frames
// against the documented frame schemas.
func TestOpenAPIWebSocket(t *testing.T) {
	doc := spec(t)
	v := validator{doc}
	f := specServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := herald.Event{ID: "e1", UserID: "u1", Type: "t", Priority: herald.PriorityNormal, CreatedAt: time.Now()}
	if _, err := f.appendTo(ctx, []herald.Notification{herald.NewNotification(&e)}); err != nil {
		t.Fatal(err)
	}
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/v1/ws?after=0"
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, url, http.Header{"Authorization": {"Bearer tok-u1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	_ = resp.Body.Close()
	if _, ok := dig(operation(t, doc, "/v1/ws", "GET"), "responses", strconv.Itoa(resp.StatusCode)).(map[string]any); !ok {
		t.Fatalf("status %d of the upgrade is not documented", resp.StatusCode)
	}
	deadline, _ := ctx.Deadline()
	_ = ws.SetReadDeadline(deadline)
	next := func(want string) map[string]any {
		t.Helper()
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		frame, _ := decode(t, data).(map[string]any)
		if frame["type"] != want {
			t.Fatalf("frame %s, want type %s", data, want)
		}
		if errs := v.check(deref(doc, "#/components/schemas/ServerFrame"), frame, "#"); len(errs) > 0 {
			t.Fatalf("frame %s: %v", data, errs)
		}
		return frame
	}
	next("notification")
	next("synced")
	read := `{"type":"read","all":true}`
	if errs := v.check(deref(doc, "#/components/schemas/ReadFrame"), decode(t, []byte(read)), "#"); len(errs) > 0 {
		t.Fatalf("read frame: %v", errs)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(read)); err != nil {
		t.Fatal(err)
	}
	if got := next("unread"); got["count"] != json.Number("0") {
		t.Fatalf("unread frame %v", got)
	}
	// The broadcast frame (a gateway with live broadcasts, not this
	// server's) as the gateway renders it: a herald.Broadcast.
	bc, err := json.Marshal(map[string]any{"type": "broadcast", "broadcast": herald.Broadcast{
		EventID: "big-1", Topic: "news", Type: "release", Priority: herald.PriorityNormal, Title: "v2",
		Data: json.RawMessage(`{"v":2}`), CreatedAt: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	if errs := v.check(deref(doc, "#/components/schemas/ServerFrame"), decode(t, bc), "#"); len(errs) > 0 {
		t.Fatalf("broadcast frame %s: %v", bc, errs)
	}
	for _, bad := range []string{`{"type":"read"}`, `{"type":"read","seqs":[0]}`, `{"type":"read","seqs":[1],"all":true}`, `{"type":"nope"}`} {
		if errs := v.check(deref(doc, "#/components/schemas/ReadFrame"), decode(t, []byte(bad)), "#"); len(errs) == 0 {
			t.Errorf("ReadFrame schema accepts %s, which the gateway refuses", bad)
		}
	}
}

func operation(t *testing.T, doc map[string]any, path, method string) map[string]any {
	t.Helper()
	op, ok := dig(doc, "paths", path, strings.ToLower(method)).(map[string]any)
	if !ok {
		t.Fatalf("no operation %s %s in the spec", method, path)
	}
	return op
}

// checkResponse finds the documented response for r's status and checks
// r against it.
func checkResponse(t *testing.T, v validator, op map[string]any, r reply) {
	t.Helper()
	doc := deref(v.doc, dig(op, "responses", strconv.Itoa(r.code)))
	if doc == nil {
		t.Fatalf("status %d is not documented for this operation (%s)", r.code, r.raw)
	}
	checkBody(t, v, doc, r)
}

// checkBody checks the content type, body and headers of a response
// against a response object.
func checkBody(t *testing.T, v validator, doc any, r reply) {
	t.Helper()
	content, _ := dig(doc, "content").(map[string]any)
	if len(content) == 0 {
		if len(r.raw) != 0 {
			t.Fatalf("documented without a body, got %s", r.raw)
		}
		return
	}
	ct, _, _ := strings.Cut(r.header.Get("Content-Type"), ";")
	media, ok := content[ct]
	if !ok {
		t.Fatalf("content type %q is not documented (%v)", ct, content)
	}
	headers, _ := dig(doc, "headers").(map[string]any)
	for h := range headers {
		if r.header.Get(h) == "" {
			t.Errorf("documented header %s missing", h)
		}
	}
	if ct != "application/json" {
		return
	}
	if errs := v.check(dig(media, "schema"), decode(t, r.raw), "#"); len(errs) > 0 {
		t.Fatalf("body %s does not fit the schema: %v", r.raw, errs)
	}
}

func decode(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	return v
}

// dig follows keys through nested objects; nil when one is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// resolve follows a local JSON pointer reference.
func resolve(doc map[string]any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %q is not local", ref)
	}
	var cur any = doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok || m[tok] == nil {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		cur = m[tok]
	}
	return cur, nil
}

// deref resolves v when it is a reference object or a pointer string;
// nil when it does not resolve.
func deref(doc map[string]any, v any) any {
	for range 10 {
		ref, _ := v.(string)
		if m, ok := v.(map[string]any); ok {
			if ref, _ = m["$ref"].(string); ref == "" {
				return v
			}
		}
		if ref == "" {
			return v
		}
		r, err := resolve(doc, ref)
		if err != nil {
			return nil
		}
		v = r
	}
	return nil
}

// validator is a small JSON Schema (2020-12) checker covering the keywords
// openapi.json uses.
type validator struct{ doc map[string]any }

func (v validator) check(schema, val any, at string) []string {
	if b, ok := schema.(bool); ok {
		if !b {
			return []string{at + ": no value allowed"}
		}
		return nil
	}
	s, ok := schema.(map[string]any)
	if !ok {
		return []string{at + ": schema is not an object"}
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if ref, ok := s["$ref"].(string); ok {
		target, err := resolve(v.doc, ref)
		if err != nil {
			return []string{at + ": " + err.Error()}
		}
		errs = append(errs, v.check(target, val, at)...)
	}
	if ty, ok := s["type"]; ok {
		types, _ := ty.([]any)
		if name, ok := ty.(string); ok {
			types = []any{name}
		}
		if !slices.ContainsFunc(types, func(ty any) bool { return isType(val, ty.(string)) }) {
			return append(errs, fmt.Sprintf("%s: %v is not of type %v", at, val, ty))
		}
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(c, val) {
		fail("%v is not %v", val, c)
	}
	if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return reflect.DeepEqual(x, val) }) {
		fail("%v is not one of %v", val, e)
	}
	switch val := val.(type) {
	case map[string]any:
		for _, r := range asSlice(s["required"]) {
			if _, ok := val[r.(string)]; !ok {
				fail("required field %q missing", r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, x := range val {
			if p, ok := props[k]; ok {
				errs = append(errs, v.check(p, x, at+"/"+k)...)
			} else if ap, ok := s["additionalProperties"]; ok {
				errs = append(errs, v.check(ap, x, at+"/"+k)...)
			}
		}
	case []any:
		if n, ok := num(s["minItems"]); ok && float64(len(val)) < n {
			fail("%d items, fewer than %v", len(val), n)
		}
		if n, ok := num(s["maxItems"]); ok && float64(len(val)) > n {
			fail("%d items, more than %v", len(val), n)
		}
		if items, ok := s["items"]; ok {
			for i, x := range val {
				errs = append(errs, v.check(items, x, at+"/"+strconv.Itoa(i))...)
			}
		}
	case string:
		n := float64(utf8.RuneCountInString(val))
		if m, ok := num(s["minLength"]); ok && n < m {
			fail("shorter than %v", m)
		}
		if m, ok := num(s["maxLength"]); ok && n > m {
			fail("longer than %v", m)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(val) {
			fail("%q does not match %s", val, p)
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, val); err != nil {
				fail("%q is not a date-time", val)
			}
		}
	case json.Number:
		x, _ := val.Float64()
		if m, ok := num(s["minimum"]); ok && x < m {
			fail("%v is less than %v", val, m)
		}
		if m, ok := num(s["maximum"]); ok && x > m {
			fail("%v is more than %v", val, m)
		}
	}
	for _, sub := range asSlice(s["allOf"]) {
		errs = append(errs, v.check(sub, val, at)...)
	}
	if subs := asSlice(s["anyOf"]); len(subs) > 0 &&
		!slices.ContainsFunc(subs, func(sub any) bool { return len(v.check(sub, val, at)) == 0 }) {
		fail("matches none of anyOf")
	}
	if one := asSlice(s["oneOf"]); len(one) > 0 {
		n := 0
		for _, sub := range one {
			if len(v.check(sub, val, at)) == 0 {
				n++
			}
		}
		if n != 1 {
			fail("matches %d of oneOf, want exactly 1", n)
		}
	}
	if not, ok := s["not"]; ok && len(v.check(not, val, at)) == 0 {
		fail("matches a schema it must not")
	}
	return errs
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func num(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func isType(v any, ty string) bool {
	switch v := v.(type) {
	case nil:
		return ty == "null"
	case bool:
		return ty == "boolean"
	case string:
		return ty == "string"
	case []any:
		return ty == "array"
	case map[string]any:
		return ty == "object"
	case json.Number:
		if ty == "number" {
			return true
		}
		_, err := strconv.ParseInt(v.String(), 10, 64)
		_, uerr := strconv.ParseUint(v.String(), 10, 64)
		return ty == "integer" && (err == nil || uerr == nil)
	}
	return false
}

// devPushes stands in for herald dev's fake providers' recording: one
// record of each provider, in the fakes' own Record type.
type devPushes struct{}

func (devPushes) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	body, _ := json.Marshal(map[string][]pushfake.Record{"pushes": {
		{Provider: pushfake.APNs, Token: "ok-1", Status: 200, At: at,
			Headers: map[string]string{"apns-push-type": "alert", "apns-collapse-id": "n-1", "apns-id": "0a0b0c0d-0000-0000-0000-000000000001"},
			Payload: json.RawMessage(`{"aps":{"alert":{"title":"Hi"}},"herald_id":"n-1","herald_seq":1,"herald_event_id":"e-1"}`)},
		{Provider: pushfake.FCM, Token: "unregistered-2", Status: 404, Reason: "UNREGISTERED", At: at,
			Headers: map[string]string{}, Payload: json.RawMessage(`{"message":{"token":"unregistered-2"}}`)},
		{Provider: pushfake.APNs, Token: "x", Status: 400, Reason: "BadDeviceToken", At: at, Headers: map[string]string{}},
	}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}
