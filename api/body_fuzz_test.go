package api

import (
	"bytes"
	"encoding/json"
	"testing"

	herald "github.com/heraldhq/herald"
)

// FuzzDecodeBody: the strict decoder never panics, accepts only a single
// valid JSON object with known fields and nothing after it, and every
// refusal is a *herald.ValidationError whose message is valid UTF-8.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"platform":"ios","token":"t","app_id":"a"}`,
		`{"platform":"ios","token":"t","app_id":"a"}}`,
		`{"seqs":[1,2],"all":false} `,
		`{"seqs":"1"}`, `{"name":1}`, `{"platform":é}`, `[]`, ``, `{`, "{\"token\":\"\xff\"}",
		`{"all":true} {"all":true}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req struct {
			Platform string   `json:"platform"`
			Token    string   `json:"token"`
			AppID    string   `json:"app_id"`
			Seqs     []uint64 `json:"seqs"`
			All      bool     `json:"all"`
		}
		err := decodeStrict(b, &req)
		if err == nil {
			if !json.Valid(b) {
				t.Fatalf("accepted invalid JSON %q", b)
			}
			// Exactly one value: re-decoding leaves nothing behind.
			dec := json.NewDecoder(bytes.NewReader(b))
			var v any
			if dec.Decode(&v) != nil || dec.More() {
				t.Fatalf("accepted more than one value: %q", b)
			}
			return
		}
		ve, ok := herald.AsValidationError(err)
		if !ok {
			t.Fatalf("%q: %T %v is not a ValidationError", b, err, err)
		}
		if !json.Valid([]byte(`"` + jsonEscape(ve.Error()) + `"`)) {
			t.Fatalf("%q: message not encodable: %q", b, ve.Error())
		}
	})
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
