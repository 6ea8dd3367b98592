package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	herald "github.com/heraldhq/herald"
)

// maxBody bounds every request body but those of POST /v1/events
// (maxBodyBytes) and POST /v1/audiences/{topic}/members (maxMembersBody).
const maxBody = 64 << 10

// errTooLarge is returned by readBody for a body over its limit.
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string { return fmt.Sprintf("body larger than %d bytes", e.limit) }

// readBody reads at most limit bytes of r's body; a longer body is an
// errTooLarge.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errTooLarge{mbe.Limit}
	}
	return b, err
}

// decodeStrict decodes exactly one JSON value from b into v: no unknown
// fields, no trailing data (whitespace only). Every failure is a
// *herald.ValidationError naming the field when one is at fault: the
// unknown field, or the field of the wrong type. Characters in messages
// are characters, never the bytes of one.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return &herald.ValidationError{Reason: "empty body: send a JSON object"}
	}
	if t := bytes.TrimSpace(b); t[0] != '{' {
		return &herald.ValidationError{Reason: "the body must be a JSON object"}
	}
	if !utf8.Valid(b) {
		return &herald.ValidationError{Reason: "body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return strictError(b, err)
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		r, _ := utf8.DecodeRune(rest)
		return &herald.ValidationError{Reason: fmt.Sprintf("trailing data after the JSON value: %q at byte %d", r, len(b)-len(rest))}
	}
	return nil
}

// strictError names what encoding/json found wrong.
func strictError(b []byte, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		reason := fmt.Sprintf("must be %s, got %s", kind(te.Type.Kind().String()), te.Value)
		if te.Field == "" {
			reason = "the body " + reason
		}
		return &herald.ValidationError{Field: te.Field, Reason: reason}
	case errors.As(err, &se):
		// encoding/json quotes the offending byte, which for a multi-byte
		// character is not the character: report the character itself.
		at := int(se.Offset) - 1
		if at < 0 {
			at = 0
		}
		for at > 0 && at < len(b) && !utf8.RuneStart(b[at]) {
			at--
		}
		if at < len(b) {
			r, _ := utf8.DecodeRune(b[at:])
			return &herald.ValidationError{Reason: fmt.Sprintf("malformed JSON: unexpected %q at byte %d", r, at)}
		}
		return &herald.ValidationError{Reason: "malformed JSON: " + se.Error()}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &herald.ValidationError{Reason: "malformed JSON: unexpected end of input"}
	}
	// DisallowUnknownFields: `json: unknown field "name"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		var field string
		if json.Unmarshal([]byte(name), &field) != nil {
			field = strings.Trim(name, `"`)
		}
		return &herald.ValidationError{Field: field, Reason: "unknown field"}
	}
	return &herald.ValidationError{Reason: "malformed JSON: " + err.Error()}
}

func kind(k string) string {
	switch k {
	case "ptr", "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	}
	return "a " + k
}

// decodeBody reads and strictly decodes a user request body (at most
// maxBody bytes) into v, answering 413 or 400 itself when it cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := readBody(w, r, maxBody)
	if err != nil {
		bodyError(w, err)
		return false
	}
	if err := decodeStrict(b, v); err != nil {
		ve, _ := herald.AsValidationError(err)
		writeError(w, http.StatusBadRequest, ve.Field, ve.Error())
		return false
	}
	return true
}

// bodyError answers a failure to read the body: 413 over the limit, 408
// when the read timed out, 400 otherwise.
func bodyError(w http.ResponseWriter, err error) {
	var tl errTooLarge
	var ne interface{ Timeout() bool }
	switch {
	case errors.As(err, &tl):
		writeError(w, http.StatusRequestEntityTooLarge, "", tl.Error())
	case errors.As(err, &ne) && ne.Timeout():
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, "", "the body was not received in time")
	default:
		writeError(w, http.StatusBadRequest, "", "reading body: "+err.Error())
	}
}
