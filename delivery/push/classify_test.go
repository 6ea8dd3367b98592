package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/errclass"
)

// outcome is what a pipeline does with a Result.
type outcome string

const (
	sent      outcome = "sent"
	retry     outcome = "retry"
	tokenDead outcome = "token dead"
	perm      outcome = "permanent"
	fatal     outcome = "fatal"
)

func outcomeOf(r Result) outcome {
	switch {
	case r.Sent:
		return sent
	case r.TokenDead:
		if r.Class != errclass.ClassPermanent {
			return "token dead but not permanent"
		}
		return tokenDead
	case r.Class == errclass.ClassTransient:
		return retry
	case r.Class == errclass.ClassPermanent:
		return perm
	}
	return fatal
}

func TestClassifyAPNs(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason string
		want   outcome
	}{
		{200, "", sent},
		{429, "TooManyRequests", retry},
		{429, "TooManyProviderTokenUpdates", retry},
		{500, "InternalServerError", retry},
		{503, "ServiceUnavailable", retry},
		{503, "Shutdown", retry},
		{502, "", retry},
		{410, "Unregistered", tokenDead},
		{410, "ExpiredToken", tokenDead},
		{400, "BadDeviceToken", tokenDead},
		{400, "DeviceTokenNotForTopic", tokenDead},
		{403, "InvalidProviderToken", perm},
		{403, "ExpiredProviderToken", perm},
		{403, "MissingProviderToken", perm},
		{413, "PayloadTooLarge", perm},
		{400, "BadTopic", perm},
		{400, "TopicDisallowed", perm},
		{400, "BadCollapseId", perm},
		{400, "", perm},
		{404, "BadPath", perm},
		{405, "MethodNotAllowed", perm},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.reason), func(t *testing.T) {
			r := ClassifyAPNs(tc.status, tc.reason, 0)
			if got := outcomeOf(r); got != tc.want {
				t.Fatalf("outcome %s, want %s (%+v)", got, tc.want, r)
			}
			if r.Provider != ProviderAPNs || r.Status != tc.status {
				t.Fatalf("provider/status: %+v", r)
			}
			if !r.Sent && (r.Reason == "" || r.Err == nil) {
				t.Fatalf("a failure needs a reason and an error: %+v", r)
			}
			if r.Sent && (r.Err != nil || r.Reason != "") {
				t.Fatalf("a success carries no reason or error: %+v", r)
			}
			if r.Retriable() != (tc.want == retry) {
				t.Fatalf("Retriable() = %v", r.Retriable())
			}
		})
	}
}

func TestClassifyFCM(t *testing.T) {
	for _, tc := range []struct {
		status  int
		code    string
		message string
		want    outcome
	}{
		{200, "", "", sent},
		{503, "UNAVAILABLE", "", retry},
		{500, "INTERNAL", "", retry},
		{429, "QUOTA_EXCEEDED", "", retry},
		{500, "UNSPECIFIED_ERROR", "", retry},
		{502, "", "", retry},
		{429, "", "", retry},
		{404, "UNREGISTERED", "Requested entity was not found.", tokenDead},
		{403, "SENDER_ID_MISMATCH", "SenderId mismatch", tokenDead},
		{400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", tokenDead},
		{400, "INVALID_ARGUMENT", "", tokenDead},
		{400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value'", perm},
		{401, "THIRD_PARTY_AUTH_ERROR", "", perm},
		{401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", perm},
		{403, "PERMISSION_DENIED", "", perm},
		{404, "", "", perm},
		{400, "", "", perm},
	} {
		t.Run(fmt.Sprintf("%d %s %s", tc.status, tc.code, tc.message), func(t *testing.T) {
			r := ClassifyFCM(tc.status, tc.code, tc.message, 0)
			if got := outcomeOf(r); got != tc.want {
				t.Fatalf("outcome %s, want %s (%+v)", got, tc.want, r)
			}
			if r.Provider != ProviderFCM || r.Status != tc.status {
				t.Fatalf("provider/status: %+v", r)
			}
			if !r.Sent && (r.Reason == "" || r.Err == nil) {
				t.Fatalf("a failure needs a reason and an error: %+v", r)
			}
		})
	}
}

func TestClassifyKeepsRetryAfter(t *testing.T) {
	if r := ClassifyAPNs(429, "TooManyRequests", 3*time.Second); r.RetryAfter != 3*time.Second {
		t.Fatalf("apns RetryAfter %v", r.RetryAfter)
	}
	if r := ClassifyFCM(503, "UNAVAILABLE", "", time.Second); r.RetryAfter != time.Second {
		t.Fatalf("fcm RetryAfter %v", r.RetryAfter)
	}
	if r := ClassifyAPNs(200, "", time.Second); r.RetryAfter != 0 {
		t.Fatalf("a success has no RetryAfter: %v", r.RetryAfter)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyErr(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		want   outcome
		reason string
	}{
		{"nil", nil, sent, ""},
		{"canceled", fmt.Errorf("post: %w", context.Canceled), retry, ReasonCanceled},
		{"deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), retry, ReasonTimeout},
		{"os deadline", os.ErrDeadlineExceeded, retry, ReasonTimeout},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, retry, ReasonTimeout},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, retry, ReasonConnection},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), retry, ReasonConnection},
		{"eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), retry, ReasonConnection},
		{"dns", &net.DNSError{Err: "no such host", Name: "x"}, retry, ReasonConnection},
		{"permanent", &PermanentError{Reason: ReasonPayloadTooLarge, Err: errors.New("big")}, perm, ReasonPayloadTooLarge},
		{"wrapped permanent", fmt.Errorf("x: %w", &PermanentError{Reason: ReasonBadCredentials, Err: errors.New("401")}), perm, ReasonBadCredentials},
		{"marked fatal", errclass.Fatal(errors.New("closed")), fatal, ReasonUnknown},
		{"other", errors.New("strange"), retry, ReasonUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ClassifyErr(ProviderFCM, tc.err)
			if got := outcomeOf(r); got != tc.want {
				t.Fatalf("outcome %s, want %s (%+v)", got, tc.want, r)
			}
			if r.Reason != tc.reason {
				t.Fatalf("reason %q, want %q", r.Reason, tc.reason)
			}
			if !errors.Is(r.Err, tc.err) {
				t.Fatalf("Err %v does not wrap %v", r.Err, tc.err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999999", 24 * time.Hour},
	} {
		if got := ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
