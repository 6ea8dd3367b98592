package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
)

// Close codes of the WebSocket protocol (public contract: docs/ARCHITECTURE.md
// and api/openapi.json list every one of them).
const (
	// CloseUnauthorized: the connection's token expired. (A bad token at
	// the handshake is answered with HTTP 401 instead.)
	CloseUnauthorized = 4001
	// CloseTooSlow: the client did not read fast enough; its outbound queue
	// overflowed. It should reconnect with after=<last seq it saw>.
	CloseTooSlow = 4008
	// CloseRateLimited: the user's connections on this gateway sent more
	// client frames than Config.FrameRate/FrameBurst allow. It should
	// reconnect with backoff and after=<last seq>, and send fewer frames
	// (one read frame can carry up to MaxReadSeqs seqs). A 4xxx code of its
	// own, mirroring HTTP 429, because 1008 already means "too many
	// connections" and the client's remedy differs.
	CloseRateLimited = 4029
	// CloseUnsupportedData (1003): a binary frame or an unknown frame type.
	CloseUnsupportedData = websocket.CloseUnsupportedData
	// CloseInvalidPayload (1007): a frame that is not the JSON the protocol
	// defines.
	CloseInvalidPayload = websocket.CloseInvalidFramePayloadData
	// CloseTooManyConns (1008, policy violation): the user opened more than
	// Config.MaxConnsPerUser connections at once (normally refused with
	// HTTP 429 before the upgrade).
	CloseTooManyConns = websocket.ClosePolicyViolation
	// CloseTooBig (1009): a frame larger than Config.MaxMessageBytes.
	CloseTooBig = websocket.CloseMessageTooBig
	// CloseInternalError (1011): the inbox could not be read or updated.
	CloseInternalError = websocket.CloseInternalServerErr
	// CloseRestarting (1012): the server is shutting down; reconnect with backoff.
	CloseRestarting = websocket.CloseServiceRestart
	// CloseTryAgainLater (1013, RFC 6455's "try again later"): the gateway
	// is overloaded (a reconnect storm): the connection waited
	// Config.ReplayWait for a replay slot. Reconnect with backoff and
	// jitter, with after=<last seq>.
	CloseTryAgainLater = websocket.CloseTryAgainLater
)

// rateLimitedReason is the close reason of CloseRateLimited.
func rateLimitedReason(perSecond float64) string {
	return truncateReason(fmt.Sprintf("rate limited: more than %g frames/s, reconnect with backoff", perSecond))
}

// MaxReadSeqs bounds the seqs of one read frame (herald.MaxReadSeqs, shared
// with POST /v1/notifications/read).
const MaxReadSeqs = herald.MaxReadSeqs

// maxCloseReason is the longest close reason that fits a control frame
// (125 bytes minus the 2-byte code).
const maxCloseReason = 123

// ClientFrame is a decoded client → server frame. The only type is "read":
// exactly one of Seqs (non-empty) and All is set.
type ClientFrame struct {
	Type string   `json:"type"`
	Seqs []uint64 `json:"seqs,omitempty"`
	All  bool     `json:"all,omitempty"`
}

// FrameError is why a client frame was refused, with the close code the
// connection is closed with (1003 or 1007) and a reason that fits a close
// frame.
type FrameError struct {
	Code   int
	Reason string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("websocket frame refused (%d): %s", e.Code, e.Reason)
}

func frameErr(code int, format string, args ...any) *FrameError {
	return &FrameError{Code: code, Reason: truncateReason(fmt.Sprintf(format, args...))}
}

// truncateReason cuts s to a close-frame reason without splitting a rune.
func truncateReason(s string) string {
	if len(s) <= maxCloseReason {
		return s
	}
	s = s[:maxCloseReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// DecodeClientFrame parses one client text frame. Errors are *FrameError:
// 1007 (invalid payload) for anything that is not a well-formed frame of a
// known type, 1003 (unsupported data) for a well-formed frame of an unknown
// type. Unknown fields are ignored.
func DecodeClientFrame(b []byte) (ClientFrame, error) {
	if !utf8.Valid(b) {
		return ClientFrame{}, frameErr(CloseInvalidPayload, "frame is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ClientFrame{}, frameErr(CloseInvalidPayload, "frame must be a JSON object")
	}
	var w struct {
		Type *string  `json:"type"`
		Seqs []uint64 `json:"seqs"`
		All  *bool    `json:"all"`
	}
	if err := json.Unmarshal(trimmed, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return ClientFrame{}, frameErr(CloseInvalidPayload, "field %s: want %s", te.Field, kind(te.Type.String()))
		}
		return ClientFrame{}, frameErr(CloseInvalidPayload, "malformed JSON")
	}
	if w.Type == nil || *w.Type == "" {
		return ClientFrame{}, frameErr(CloseInvalidPayload, "missing type")
	}
	if *w.Type != "read" {
		return ClientFrame{}, frameErr(CloseUnsupportedData, "unsupported frame type %s", strconv.QuoteToASCII(*w.Type))
	}
	all := w.All != nil && *w.All
	if err := herald.ValidateRead(w.Seqs, all); err != nil {
		return ClientFrame{}, frameErr(CloseInvalidPayload, "read: %v", err)
	}
	if all {
		return ClientFrame{Type: "read", All: true}, nil
	}
	return ClientFrame{Type: "read", Seqs: w.Seqs}, nil
}

func kind(goType string) string {
	switch goType {
	case "string", "*string":
		return "a string"
	case "bool", "*bool":
		return "a boolean"
	case "[]uint64":
		return "an array of positive integers"
	case "uint64":
		return "a positive integer"
	}
	return "another type"
}

// notificationFrame is {"type":"notification","notification":{…}}.
type notificationFrame struct {
	Type         string               `json:"type"`
	Notification *herald.Notification `json:"notification"`
}

// encodeNotification renders n's frame once; the bytes are immutable and
// shared by every connection they are queued to.
func encodeNotification(n *herald.Notification) ([]byte, error) {
	return json.Marshal(notificationFrame{Type: "notification", Notification: n})
}

// encodeSynced renders {"type":"synced","seq":S,"unread":N}.
func encodeSynced(seq uint64, unread int64) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"type":"synced","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"unread":`...)
	b = strconv.AppendInt(b, unread, 10)
	return append(b, '}')
}

// encodeUnread renders {"type":"unread","count":N}.
func encodeUnread(unread int64) []byte {
	b := make([]byte, 0, 40)
	b = append(b, `{"type":"unread","count":`...)
	b = strconv.AppendInt(b, unread, 10)
	return append(b, '}')
}
