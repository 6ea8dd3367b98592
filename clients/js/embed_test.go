package jsclient

import (
	"bytes"
	"io/fs"
	"testing"
)

func TestDistHasTheClient(t *testing.T) {
	for _, name := range []string{"herald.js", "backoff.js", "transports/websocket.js"} {
		b, err := fs.ReadFile(Dist, name)
		if err != nil {
			t.Fatalf("Dist lacks %s: %v", name, err)
		}
		if len(b) == 0 {
			t.Fatalf("%s is empty", name)
		}
	}
	b, _ := fs.ReadFile(Dist, "herald.js")
	if !bytes.Contains(b, []byte("export class Herald")) {
		t.Fatal("herald.js does not export Herald")
	}
}
