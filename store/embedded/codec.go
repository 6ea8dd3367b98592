package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	herald "github.com/heraldhq/herald"
)

// recordV1 is the first byte of a version-1 notification record:
//
//	0x01 | uvarint prev | varint unix seconds | uvarint nanoseconds |
//	then ID, EventID, Type, Priority, Title, Body, Data, each as
//	uvarint length + bytes.
//
// Seq is the key, UserID is in the key and Read is the unread index, so
// none of them is in the record. A new version gets a new first byte and a
// decoder branch; existing records are never rewritten.
const recordV1 = 1

// errCorrupt reports a record that does not decode.
var errCorrupt = errors.New("embedded: corrupt notification record")

func encodeNotification(n *herald.Notification) []byte {
	size := 1 + 3*binary.MaxVarintLen64 +
		7*binary.MaxVarintLen32 + len(n.ID) + len(n.EventID) + len(n.Type) + len(n.Priority) +
		len(n.Title) + len(n.Body) + len(n.Data)
	b := make([]byte, 0, size)
	b = append(b, recordV1)
	b = binary.AppendUvarint(b, n.Prev)
	b = binary.AppendVarint(b, n.CreatedAt.Unix())
	b = binary.AppendUvarint(b, uint64(n.CreatedAt.Nanosecond()))
	for _, s := range [...]string{n.ID, n.EventID, n.Type, string(n.Priority), n.Title, n.Body} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(n.Data)))
	b = append(b, n.Data...)
	return b
}

// decodeNotification decodes a record. b may be memory owned by a bbolt
// transaction: everything returned is copied out of it.
func decodeNotification(b []byte, userID string, seq uint64, read bool) (herald.Notification, error) {
	d := decoder{b: b}
	if v := d.byte(); v != recordV1 {
		if d.err == nil {
			d.err = fmt.Errorf("unknown record version %d", v)
		}
		return herald.Notification{}, fmt.Errorf("%w: user %q seq %d: %w", errCorrupt, userID, seq, d.err)
	}
	n := herald.Notification{UserID: userID, Seq: seq, Read: read}
	n.Prev = d.uvarint()
	sec := d.varint()
	nsec := d.uvarint()
	n.ID = string(d.bytes())
	n.EventID = string(d.bytes())
	n.Type = string(d.bytes())
	n.Priority = herald.Priority(d.bytes())
	n.Title = string(d.bytes())
	n.Body = string(d.bytes())
	if data := d.bytes(); len(data) > 0 {
		n.Data = append([]byte(nil), data...)
	}
	if d.err == nil && nsec >= 1e9 {
		d.err = fmt.Errorf("nanoseconds %d out of range", nsec)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return herald.Notification{}, fmt.Errorf("%w: user %q seq %d: %w", errCorrupt, userID, seq, d.err)
	}
	n.CreatedAt = time.Unix(sec, int64(nsec)).UTC()
	return n, nil
}

// decoder reads a record front to back; after the first error every read
// returns a zero value and err keeps that first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a length-prefixed field, aliasing d.b.
func (d *decoder) bytes() []byte {
	l := d.uvarint()
	if d.err != nil {
		return nil
	}
	if l > uint64(len(d.b)) {
		d.err = fmt.Errorf("field of %d bytes, %d left", l, len(d.b))
		return nil
	}
	f := d.b[:l]
	d.b = d.b[l:]
	return f
}

// userMeta is the value of the users bucket.
type userMeta struct {
	last   uint64 // seq of the newest notification
	unread int64  // size of the user's unread range
}

func (m userMeta) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, m.last)
	binary.BigEndian.PutUint64(b[8:], uint64(m.unread))
	return b
}

func decodeMeta(b []byte) (userMeta, error) {
	if len(b) != 16 {
		return userMeta{}, fmt.Errorf("embedded: corrupt user meta (%d bytes)", len(b))
	}
	return userMeta{last: binary.BigEndian.Uint64(b), unread: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

// maxUserIDBytes bounds user ids so their length fits the one-byte prefix of
// userKey.
const maxUserIDBytes = 255

// maxEventIDBytes is the Cassandra store's limit on event ids, kept here
// too so that both stores refuse the same notifications.
const maxEventIDBytes = 1024

// userKey is the prefix of every per-user key: the id's length, then the id.
func userKey(userID string) []byte {
	k := make([]byte, 0, 1+len(userID)+8)
	k = append(k, byte(len(userID)))
	return append(k, userID...)
}

// seqKey is userKey followed by the big-endian seq.
func seqKey(userID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(userKey(userID), seq)
}

// suffixKey is userKey followed by s (an event id or a device token).
func suffixKey(userID, s string) []byte {
	k := make([]byte, 0, 1+len(userID)+len(s))
	k = append(k, byte(len(userID)))
	k = append(k, userID...)
	return append(k, s...)
}

// seqOf is the seq at the end of an inbox or unread key.
func seqOf(key []byte) uint64 {
	return binary.BigEndian.Uint64(key[len(key)-8:])
}

func encodeSeq(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}

func checkUserID(userID string) error {
	if userID == "" {
		return &herald.ValidationError{Field: "user_id", Reason: "must not be empty"}
	}
	if len(userID) > maxUserIDBytes {
		return &herald.ValidationError{Field: "user_id", Reason: fmt.Sprintf("is %d bytes, more than the %d the embedded store allows", len(userID), maxUserIDBytes)}
	}
	return nil
}
