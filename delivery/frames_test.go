package delivery

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	herald "github.com/heraldhq/herald"
)

func TestDecodeClientFrame(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ClientFrame
		code int
	}{
		{`{"type":"read","seqs":[1,2,3]}`, ClientFrame{Type: "read", Seqs: []uint64{1, 2, 3}}, 0},
		{` {"type":"read","all":true,"extra":{"x":1}} `, ClientFrame{Type: "read", All: true}, 0},
		{`{"type":"read","seqs":[5],"all":false}`, ClientFrame{Type: "read", Seqs: []uint64{5}}, 0},
		{`{"type":"read","seqs":[1],"all":true}`, ClientFrame{}, CloseInvalidPayload},
		{`{"type":"read","all":false}`, ClientFrame{}, CloseInvalidPayload},
		{`{"type":"read","seqs":[]}`, ClientFrame{}, CloseInvalidPayload},
		{`{"type":"read","seqs":[0]}`, ClientFrame{}, CloseInvalidPayload},
		{`{"type":"read","seqs":[1.5]}`, ClientFrame{}, CloseInvalidPayload},
		{`{"type":"read","seqs":"1"}`, ClientFrame{}, CloseInvalidPayload},
		{`{"type":"read","all":"yes"}`, ClientFrame{}, CloseInvalidPayload},
		{`{"type":"read","seqs":[` + strings.Repeat("1,", MaxReadSeqs) + `1]}`, ClientFrame{}, CloseInvalidPayload},
		{`{"type":7}`, ClientFrame{}, CloseInvalidPayload},
		{`{}`, ClientFrame{}, CloseInvalidPayload},
		{`[]`, ClientFrame{}, CloseInvalidPayload},
		{`null`, ClientFrame{}, CloseInvalidPayload},
		{``, ClientFrame{}, CloseInvalidPayload},
		{`{"type":"read"} {}`, ClientFrame{}, CloseInvalidPayload},
		{"{\"type\":\"read\xff\"}", ClientFrame{}, CloseInvalidPayload},
		{`{"type":"READ","all":true}`, ClientFrame{}, CloseUnsupportedData},
		{`{"type":"ping"}`, ClientFrame{}, CloseUnsupportedData},
		{`{"type":"` + strings.Repeat("é", 200) + `"}`, ClientFrame{}, CloseUnsupportedData},
	} {
		got, err := DecodeClientFrame([]byte(tc.in))
		if tc.code == 0 {
			if err != nil || got.Type != tc.want.Type || got.All != tc.want.All || !slices.Equal(got.Seqs, tc.want.Seqs) {
				t.Errorf("%.60s: got %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			continue
		}
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Code != tc.code {
			t.Errorf("%.60s: err %v, want close code %d", tc.in, err, tc.code)
			continue
		}
		if len(fe.Reason) > maxCloseReason || !utf8.ValidString(fe.Reason) || fe.Reason == "" {
			t.Errorf("%.60s: reason %q does not fit a close frame", tc.in, fe.Reason)
		}
	}
}

func TestEncodeFrames(t *testing.T) {
	var s struct {
		Type   string
		Seq    uint64
		Unread int64
		Count  int64
	}
	if err := json.Unmarshal(encodeSynced(18446744073709551615, 42), &s); err != nil || s.Type != "synced" || s.Seq != 18446744073709551615 || s.Unread != 42 {
		t.Fatalf("synced: %+v %v", s, err)
	}
	if err := json.Unmarshal(encodeUnread(-0), &s); err != nil || s.Type != "unread" || s.Count != 0 {
		t.Fatalf("unread: %+v %v", s, err)
	}
}

func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"read","seqs":[1,2,3]}`, `{"type":"read","all":true}`, `{"type":"x"}`, `{"type":"read","seqs":[0]}`,
		`{"type":"read","seqs":[18446744073709551616]}`, `{"type":"read","all":true,"seqs":null}`, "\xff", `[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeClientFrame(b)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FrameError", err)
			}
			if fe.Code != CloseInvalidPayload && fe.Code != CloseUnsupportedData {
				t.Fatalf("close code %d", fe.Code)
			}
			if fe.Reason == "" || len(fe.Reason) > maxCloseReason || !utf8.ValidString(fe.Reason) {
				t.Fatalf("reason %q does not fit a close frame", fe.Reason)
			}
			return
		}
		if got.Type != "read" || got.All == (len(got.Seqs) > 0) || len(got.Seqs) > MaxReadSeqs || slices.Contains(got.Seqs, 0) {
			t.Fatalf("accepted an invalid frame: %+v", got)
		}
		// What it accepted round-trips.
		re, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeClientFrame(re)
		if err != nil || again.All != got.All || !slices.Equal(again.Seqs, got.Seqs) {
			t.Fatalf("round trip of %s: %+v, %v", re, again, err)
		}
	})
}

// TestReadFrameParity: a read frame is refused exactly when
// herald.ValidateRead refuses the same seqs/all (the rule HTTP uses too),
// and the close reason names the field.
func TestReadFrameParity(t *testing.T) {
	for _, tc := range []struct {
		seqs string // JSON, "" for absent
		all  bool
	}{
		{"[1]", false}, {"[1]", true}, {"[]", true}, {"[]", false}, {"", false}, {"", true},
		{"[0]", false}, {"[3,0]", false}, {"[1,2]", false},
	} {
		in := `{"type":"read"`
		var seqs []uint64
		if tc.seqs != "" {
			in += `,"seqs":` + tc.seqs
			if err := json.Unmarshal([]byte(tc.seqs), &seqs); err != nil {
				t.Fatal(err)
			}
		}
		if tc.all {
			in += `,"all":true`
		}
		in += "}"
		_, ferr := DecodeClientFrame([]byte(in))
		verr := herald.ValidateRead(seqs, tc.all)
		if (ferr == nil) != (verr == nil) {
			t.Errorf("%s: frame error %v, ValidateRead %v", in, ferr, verr)
			continue
		}
		if verr != nil {
			var fe *FrameError
			ve, _ := herald.AsValidationError(verr)
			if !errors.As(ferr, &fe) || fe.Code != CloseInvalidPayload || !strings.Contains(fe.Reason, ve.Field) {
				t.Errorf("%s: frame error %v, want 1007 naming %q", in, ferr, ve.Field)
			}
		}
	}
}
