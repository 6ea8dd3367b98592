package policy

import (
	"fmt"
	"reflect"
	"testing"
)

func TestSeen(t *testing.T) {
	s := &State{}
	if s.Seen("a") {
		t.Fatal("empty state has seen a")
	}
	for i := range MaxSeen + 10 {
		s.See(fmt.Sprint("ev-", i))
	}
	if len(s.SeenIDs) != MaxSeen {
		t.Fatalf("%d ids kept, want %d", len(s.SeenIDs), MaxSeen)
	}
	for i, want := range map[int]bool{0: false, 9: false, 10: true, MaxSeen + 9: true, MaxSeen + 10: false} {
		if got := s.Seen(fmt.Sprint("ev-", i)); got != want {
			t.Errorf("Seen(ev-%d) = %v, want %v", i, got, want)
		}
	}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.SeenIDs, s.SeenIDs) || back.Empty() {
		t.Errorf("round trip lost the seen ids (%d bytes)", len(b))
	}
	for _, bad := range []string{`{"s":"!!"}`, `{"s":"AAAA"}`, `{"s":3}`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) accepted", bad)
		}
	}
}
