package app

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/delivery/push/apns"
	"github.com/heraldhq/herald/delivery/push/fcm"
	"github.com/heraldhq/herald/delivery/push/pushfake"
)

func TestSenders(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	p8, _, err := pushfake.GenerateAPNsKey()
	if err != nil {
		t.Fatal(err)
	}
	sa, _, _, err := pushfake.GenerateServiceAccount("proj", "sa@proj.iam.gserviceaccount.com", "http://127.0.0.1:1/token")
	if err != nil {
		t.Fatal(err)
	}
	apnsApp := &push.APNsApp{Key: p8, KeyID: "K", TeamID: "T", Topic: "com.both"}
	apps := []push.App{
		{ID: "both", APNs: apnsApp, FCM: &push.FCMApp{Credentials: sa}},
		{ID: "fcm-only", FCM: &push.FCMApp{Credentials: sa}},
		{ID: "apns-only", APNs: apnsApp},
	}
	mux, closeAll, err := Senders(context.Background(), apps, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	isAPNs := func(s push.Sender) bool { _, ok := s.(*apns.Sender); return ok }
	isFCM := func(s push.Sender) bool { _, ok := s.(*fcm.Sender); return ok }
	for _, c := range []struct {
		app, platform string
		want          func(push.Sender) bool
	}{
		{"both", push.PlatformIOS, isAPNs},
		{"both", push.PlatformAndroid, isFCM},
		{"fcm-only", push.PlatformIOS, isFCM}, // iOS through FCM when the app has no APNs key
		{"fcm-only", push.PlatformAndroid, isFCM},
		{"apns-only", push.PlatformIOS, isAPNs},
	} {
		if s := mux[push.Route{AppID: c.app, Platform: c.platform}]; s == nil || !c.want(s) {
			t.Errorf("%s/%s: %T", c.app, c.platform, s)
		}
	}
	if _, ok := mux[push.Route{AppID: "apns-only", Platform: push.PlatformAndroid}]; ok || len(mux) != 5 {
		t.Errorf("routes: %v", mux)
	}

	// A credential that does not load is named by its app and field.
	missing := filepath.Join(t.TempDir(), "AuthKey_K.p8")
	for _, c := range []struct {
		app  push.App
		want string
	}{
		{push.App{ID: "com.x", APNs: &push.APNsApp{KeyFile: missing, KeyID: "K", TeamID: "T", Topic: "com.x"}}, "push.apps[com.x].apns.key_file: "},
		{push.App{ID: "com.y", APNs: &push.APNsApp{Key: []byte("not a key"), KeyID: "K", TeamID: "T", Topic: "com.y"}}, "push.apps[com.y].apns.key_file: "},
		{push.App{ID: "com.z", FCM: &push.FCMApp{CredentialsFile: missing}}, "push.apps[com.z].fcm.credentials_file: "},
	} {
		if _, _, err := Senders(context.Background(), []push.App{apps[0], c.app}, quiet); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q…", c.app.ID, err, c.want)
		}
	}
}
