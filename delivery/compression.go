package delivery

import (
	"compress/flate"
	"io"
	"time"

	"github.com/gorilla/websocket"
)

// permessage-deflate (RFC 7692), when Config.Compression lets clients
// negotiate it. gorilla only offers it without context takeover: each
// message is compressed on its own with a flate writer taken from a pool
// shared by the process, so a connection holds no compressor while idle,
// and repeated keys are not remembered across frames.

// compressionLevel is the flate level of the gateway's compressed frames.
// On a typical 656-byte notification frame (compression_bench_test.go,
// docs/BENCHMARKS.md "WebSocket compression") level 1 sends 433 bytes and
// levels 6 and 9 send 429, for 1.3 to 2 times level 1's CPU: BestSpeed.
const compressionLevel = flate.BestSpeed

// minCompressBytes is the smallest frame sent compressed. Shorter ones
// (synced and unread frames, under 64 bytes) grow when deflated, by 6 to
// 8 bytes at level 1, and cost the compressor's setup for nothing; every
// notification frame is longer (its ids and timestamp alone take ~200).
const minCompressBytes = 128

// setCompression prepares a new connection's writes: compressed at
// compressionLevel when the client negotiated the extension (gorilla
// ignores both calls otherwise).
func (g *Gateway) setCompression(ws *websocket.Conn) {
	if !g.cfg.Compression {
		return
	}
	_ = ws.SetCompressionLevel(compressionLevel) // a valid level: no error
	ws.EnableWriteCompression(true)
}

// compressFrame decides whether the next frame, f, is compressed; only the
// write side's owner calls it, before writing f. RFC 7692 lets every
// message choose (its RSV1 bit).
func (g *Gateway) compressFrame(ws *websocket.Conn, f []byte) {
	if g.cfg.Compression {
		ws.EnableWriteCompression(len(f) >= minCompressBytes)
	}
}

// readMessage is ws.ReadMessage with the gateway's MaxMessageBytes (limit)
// applied to the message as decompressed too: gorilla's read limit counts
// the bytes on the wire, and a deflated frame of 4 KiB can inflate to
// megabytes. A message past limit is answered like gorilla's own overflow,
// a 1009 close frame and websocket.ErrReadLimit, without reading the rest.
func readMessage(ws *websocket.Conn, limit int64, writeTimeout time.Duration) (int, []byte, error) {
	mt, r, err := ws.NextReader()
	if err != nil {
		return mt, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return mt, nil, err
	}
	if int64(len(b)) > limit {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseTooBig, ""),
			time.Now().Add(writeTimeout))
		return mt, nil, websocket.ErrReadLimit
	}
	return mt, b, nil
}
