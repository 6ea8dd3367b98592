package push

import (
	"context"
	"strings"
	"testing"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/errclass"
)

func TestAppValidateNamesTheField(t *testing.T) {
	good := func() App {
		return App{
			ID:   "com.example",
			APNs: &APNsApp{KeyFile: "k.p8", KeyID: "ABC", TeamID: "T", Topic: "com.example", Endpoint: APNsSandbox},
			FCM:  &FCMApp{CredentialsFile: "sa.json"},
		}
	}
	if a := good(); a.Validate() != nil {
		t.Fatalf("good app: %v", a.Validate())
	}
	for _, tc := range []struct {
		edit func(*App)
		want string
	}{
		{func(a *App) { a.ID = "" }, "push.apps[].id"},
		{func(a *App) { a.APNs, a.FCM = nil, nil }, "push.apps[com.example]: needs apns or fcm"},
		{func(a *App) { a.APNs.KeyFile = "" }, "push.apps[com.example].apns.key_file"},
		{func(a *App) { a.APNs.KeyID = "" }, "push.apps[com.example].apns.key_id"},
		{func(a *App) { a.APNs.TeamID = "" }, "push.apps[com.example].apns.team_id"},
		{func(a *App) { a.APNs.Topic = "" }, "push.apps[com.example].apns.topic"},
		{func(a *App) { a.APNs.Endpoint = "http://127.0.0.1:1" }, "push.apps[com.example].apns.endpoint"},
		{func(a *App) { a.APNs.Endpoint = "staging" }, "push.apps[com.example].apns.endpoint"},
		{func(a *App) { a.FCM.CredentialsFile = "" }, "push.apps[com.example].fcm.credentials_file"},
		{func(a *App) { a.FCM.Endpoint = "ftp://x" }, "push.apps[com.example].fcm.endpoint"},
	} {
		a := good()
		tc.edit(&a)
		err := a.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %q, got %v", tc.want, err)
		}
	}
	a := good()
	a.APNs.KeyFile, a.APNs.Key = "", []byte("pem")
	a.APNs.Endpoint = "https://127.0.0.1:8443"
	a.FCM.CredentialsFile, a.FCM.Credentials, a.FCM.Endpoint = "", []byte("{}"), "http://127.0.0.1:9000"
	if err := a.Validate(); err != nil {
		t.Fatalf("in-memory credentials and fake endpoints: %v", err)
	}
	if err := ValidateApps([]App{good(), good()}); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Fatalf("duplicate ids: %v", err)
	}
}

type recordSender struct {
	name string
	got  []string
}

func (s *recordSender) Send(_ context.Context, msgs []Message) []Result {
	out := make([]Result, len(msgs))
	for i := range msgs {
		s.got = append(s.got, msgs[i].Device.Token)
		out[i] = Result{Provider: s.name, Sent: true, MessageID: s.name + ":" + msgs[i].Device.Token}
	}
	return out
}

func TestMuxRoutesAndKeepsOrder(t *testing.T) {
	ios, android := &recordSender{name: "apns"}, &recordSender{name: "fcm"}
	m := Mux{
		{AppID: "a", Platform: PlatformIOS}:     ios,
		{AppID: "a", Platform: PlatformAndroid}: android,
	}
	dev := func(app, platform, token string) Message {
		return Message{Device: herald.Device{AppID: app, Platform: platform, Token: token}}
	}
	msgs := []Message{dev("a", "ios", "i1"), dev("a", "android", "g1"), dev("b", "ios", "x"), dev("a", "ios", "i2")}
	res := m.Send(context.Background(), msgs)
	if len(res) != len(msgs) {
		t.Fatalf("%d results for %d messages", len(res), len(msgs))
	}
	for i, want := range []string{"apns:i1", "fcm:g1", "", "apns:i2"} {
		if res[i].MessageID != want {
			t.Errorf("result %d: %+v, want message id %q", i, res[i], want)
		}
	}
	if r := res[2]; r.Sent || r.Reason != ReasonUnknownApp || r.Class != errclass.ClassPermanent || r.TokenDead {
		t.Errorf("unknown app: %+v", r)
	}
	if strings.Join(ios.got, ",") != "i1,i2" || strings.Join(android.got, ",") != "g1" {
		t.Errorf("routing: ios %v android %v", ios.got, android.got)
	}
}
