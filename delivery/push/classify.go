package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/errclass"
)

// APNs reasons the classification distinguishes (Apple's "reason" strings).
const (
	APNsUnregistered           = "Unregistered"
	APNsExpiredToken           = "ExpiredToken"
	APNsBadDeviceToken         = "BadDeviceToken"
	APNsDeviceTokenNotForTopic = "DeviceTokenNotForTopic"
	APNsInvalidProviderToken   = "InvalidProviderToken"
	APNsExpiredProviderToken   = "ExpiredProviderToken"
	APNsPayloadTooLarge        = "PayloadTooLarge"
	APNsTooManyRequests        = "TooManyRequests"
)

// FCM error codes (the errorCode of the google.firebase.fcm.v1.FcmError
// detail).
const (
	FCMUnregistered          = "UNREGISTERED"
	FCMInvalidArgument       = "INVALID_ARGUMENT"
	FCMSenderIDMismatch      = "SENDER_ID_MISMATCH"
	FCMQuotaExceeded         = "QUOTA_EXCEEDED"
	FCMUnavailable           = "UNAVAILABLE"
	FCMInternal              = "INTERNAL"
	FCMThirdPartyAuthError   = "THIRD_PARTY_AUTH_ERROR"
	FCMUnspecifiedError      = "UNSPECIFIED_ERROR"
	fcmStatusUnauthenticated = "UNAUTHENTICATED"
	fcmStatusPermission      = "PERMISSION_DENIED"
)

// ClassifyAPNs classifies an APNs answer: its HTTP status, its JSON reason
// and its Retry-After (0 if none). Status 200 is sent.
//
//   - 429 (TooManyRequests, TooManyProviderTokenUpdates), 500, 503 and any
//     other 5xx: transient;
//   - 410 (Unregistered, ExpiredToken), 400 BadDeviceToken, 400
//     DeviceTokenNotForTopic: token dead;
//   - 403 InvalidProviderToken / ExpiredProviderToken and other 403s, 413
//     PayloadTooLarge, any other 4xx: permanent. (The APNs sender refreshes
//     its JWT once on ExpiredProviderToken before reporting it.)
func ClassifyAPNs(status int, reason string, retryAfter time.Duration) Result {
	r := Result{Provider: ProviderAPNs, Status: status, Reason: reason, RetryAfter: retryAfter}
	switch {
	case status == http.StatusOK:
		r.Sent, r.Reason, r.RetryAfter = true, "", 0
		return r
	case status == http.StatusTooManyRequests || status >= 500:
		r.Class = errclass.ClassTransient
	case status == http.StatusGone,
		status == http.StatusBadRequest && (reason == APNsBadDeviceToken || reason == APNsDeviceTokenNotForTopic):
		r.Class, r.TokenDead = errclass.ClassPermanent, true
	default:
		r.Class = errclass.ClassPermanent
	}
	if r.Reason == "" {
		r.Reason = "HTTP " + strconv.Itoa(status)
	}
	r.Err = fmt.Errorf("apns: %d %s", status, r.Reason)
	return r
}

// ClassifyFCM classifies an FCM HTTP v1 error answer: its HTTP status, the
// FcmError errorCode of its details (or, without one, its google.rpc status
// such as "UNAVAILABLE"), its message and its Retry-After (0 if none).
// Status 200 is sent.
//
//   - UNAVAILABLE (503), INTERNAL (500), QUOTA_EXCEEDED (429),
//     UNSPECIFIED_ERROR, any 5xx or 429: transient;
//   - UNREGISTERED (404), SENDER_ID_MISMATCH (403), and INVALID_ARGUMENT
//     (400) about the token: token dead. INVALID_ARGUMENT is about the token
//     when its message mentions the token or says nothing (Google answers
//     "The registration token is not a valid FCM registration token");
//     otherwise it is about the payload and permanent;
//   - THIRD_PARTY_AUTH_ERROR (bad APNs credentials in Firebase), 401, 403
//     and any other 4xx: permanent.
func ClassifyFCM(status int, code, message string, retryAfter time.Duration) Result {
	r := Result{Provider: ProviderFCM, Status: status, Reason: code, RetryAfter: retryAfter}
	if status == http.StatusOK {
		r.Sent, r.Reason, r.RetryAfter = true, "", 0
		return r
	}
	switch code {
	case FCMUnavailable, FCMInternal, FCMQuotaExceeded, FCMUnspecifiedError:
		r.Class = errclass.ClassTransient
	case FCMUnregistered, FCMSenderIDMismatch:
		r.Class, r.TokenDead = errclass.ClassPermanent, true
	case FCMInvalidArgument:
		r.Class = errclass.ClassPermanent
		m := strings.ToLower(message)
		r.TokenDead = m == "" || strings.Contains(m, "token")
	case FCMThirdPartyAuthError, fcmStatusUnauthenticated, fcmStatusPermission:
		r.Class = errclass.ClassPermanent
	default:
		// Without a known code the status decides; a 404 without the
		// UNREGISTERED detail is the endpoint or project, not the token.
		r.Class = errclass.ClassPermanent
		if status == http.StatusTooManyRequests || status >= 500 || status == 0 {
			r.Class = errclass.ClassTransient
		}
	}
	if r.Reason == "" {
		r.Reason = "HTTP " + strconv.Itoa(status)
	}
	if message != "" {
		r.Err = fmt.Errorf("fcm: %d %s: %s", status, r.Reason, message)
	} else {
		r.Err = fmt.Errorf("fcm: %d %s", status, r.Reason)
	}
	return r
}

// PermanentError marks an error that ClassifyErr must report as permanent
// with the given reason (bad credentials found before any request, say).
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// ClassifyErr classifies a failure without a provider answer: a request
// that could not be sent or whose answer never came. A canceled context is
// transient with ReasonCanceled; a deadline, a net.Error timeout or
// os.ErrDeadlineExceeded is transient with ReasonTimeout; a connection
// reset, refusal, EOF or any other net error is transient with
// ReasonConnection; a *PermanentError is permanent with its reason; an
// error marked permanent or fatal with internal/errclass keeps its class
// (ReasonUnknown); anything else is transient with ReasonUnknown.
func ClassifyErr(provider string, err error) Result {
	r := Result{Provider: provider, Err: err, Class: errclass.ClassTransient, Reason: ReasonUnknown}
	if err == nil {
		r.Sent, r.Reason = true, ""
		return r
	}
	var pe *PermanentError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		r.Class, r.Reason = errclass.ClassPermanent, pe.Reason
	case errors.Is(err, context.Canceled):
		r.Reason = ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		r.Reason = ReasonTimeout
	case errors.As(err, &ne) && ne.Timeout():
		r.Reason = ReasonTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.As(err, &ne):
		r.Reason = ReasonConnection
	default:
		r.Class = errclass.Of(err)
	}
	return r
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date (relative to now). Empty, malformed or past values are 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// maxRetryAfter bounds what a provider may ask for, so a bogus header
// cannot overflow a deadline computation.
const maxRetryAfter = 24 * time.Hour
