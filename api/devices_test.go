package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldhq/herald/store/memory"
)

func devicesFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{store: memory.New()}
	cfg.Store, cfg.Users = f.store, tokens{}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	return f
}

func TestListDevices(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := devicesFixture(t, Config{DefaultAppID: "com.example.default", Now: func() time.Time { return now }})

	code, body := f.do(t, "GET", "/v1/devices", "tok-u1", "")
	if devs, ok := body["devices"].([]any); code != 200 || !ok || len(devs) != 0 {
		t.Fatalf("no devices: %d %v", code, body)
	}
	if code, body := f.do(t, "POST", "/v1/devices", "tok-u1", `{"platform":"ios","token":"t-ios","app_id":"com.example.ios"}`); code != 201 ||
		body["app_id"] != "com.example.ios" || body["last_seen"] != "2026-03-01T12:00:00Z" {
		t.Fatalf("register: %d %v", code, body)
	}
	now = now.Add(time.Minute)
	// No app_id: the default app.
	if code, body := f.do(t, "POST", "/v1/devices", "tok-u1", `{"platform":"android","token":"t-android"}`); code != 201 || body["app_id"] != "com.example.default" {
		t.Fatalf("register without app_id: %d %v", code, body)
	}
	if code, _ := f.do(t, "POST", "/v1/devices", "tok-u2", `{"platform":"ios","token":"t-other","app_id":"a"}`); code != 201 {
		t.Fatal(code)
	}

	code, body = f.do(t, "GET", "/v1/devices", "tok-u1", "")
	devs, _ := body["devices"].([]any)
	if code != 200 || len(devs) != 2 {
		t.Fatalf("list: %d %v", code, body)
	}
	for i, want := range []struct{ platform, token, app, created string }{
		{"ios", "t-ios", "com.example.ios", "2026-03-01T12:00:00Z"},
		{"android", "t-android", "com.example.default", "2026-03-01T12:01:00Z"},
	} {
		d, _ := devs[i].(map[string]any)
		if d["platform"] != want.platform || d["token"] != want.token || d["app_id"] != want.app || d["created_at"] != want.created || d["last_seen"] == nil {
			t.Errorf("device %d: %v, want %+v", i, d, want)
		}
		if _, leaked := d["user_id"]; leaked {
			t.Errorf("device %d shows its user: %v", i, d)
		}
	}
	// Only the caller's devices, and gone once deleted.
	if code, _ := f.do(t, "DELETE", "/v1/devices/t-ios", "tok-u1", ""); code != 204 {
		t.Fatal(code)
	}
	if devs, _ := f.store.Devices(context.Background(), "u1"); len(devs) != 1 || devs[0].Token != "t-android" {
		t.Fatalf("store: %+v", devs)
	}
	_, body = f.do(t, "GET", "/v1/devices", "tok-u1", "")
	if devs, _ := body["devices"].([]any); len(devs) != 1 {
		t.Fatalf("after delete: %v", body)
	}
	if code, _ := f.do(t, "GET", "/v1/devices", "", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
}

func TestDeviceAppIDRequiredWithoutDefault(t *testing.T) {
	f := devicesFixture(t, Config{})
	code, body := f.do(t, "POST", "/v1/devices", "tok-u1", `{"platform":"ios","token":"t"}`)
	if code != 400 || body["field"] != "app_id" {
		t.Fatalf("%d %v", code, body)
	}
	if devs, _ := f.store.Devices(context.Background(), "u1"); len(devs) != 0 {
		t.Fatalf("stored %+v", devs)
	}
}

func TestDevPushesOnlyWhenConfigured(t *testing.T) {
	f := devicesFixture(t, Config{})
	if code, _ := f.do(t, "GET", "/v1/dev/pushes", "", ""); code != http.StatusNotFound {
		t.Fatalf("production: %d", code)
	}
	f = devicesFixture(t, Config{DevPushes: devPushes{}})
	code, body := f.do(t, "GET", "/v1/dev/pushes", "", "")
	if pushes, _ := body["pushes"].([]any); code != 200 || len(pushes) != 3 {
		t.Fatalf("dev: %d %v", code, body)
	}
	if code, _ := f.do(t, "POST", "/v1/dev/pushes", "", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", code)
	}
}
