package filestore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/seshgo/sesh"
)

// The record file format, version 1. All integers are big-endian.
//
//	offset size
//	0      4    magic "SESF"
//	4      1    format version, 1
//	5      1    flags: bit 0 set for a tombstone; other bits zero
//	6      1    kind
//	7      1    reserved, zero
//	8      32   key
//	40     8    version (zero for a tombstone)
//	48     8    expiry of the record or tombstone, Unix milliseconds
//	56     4    length of user, at most 64 KiB
//	60     4    length of data, at most 16 MiB
//	64     ...  user, then data (both empty for a tombstone)
//	end-4  4    CRC-32C of everything before it
//
// The file's name is the key in hex; the key inside the file must match.
const (
	magic         = "SESF"
	formatVersion = 1
	flagTombstone = 1 << 0
	headerLen     = 64
	trailerLen    = 4

	// maxData is the largest Record.Data filestore holds; Save returns
	// sesh.ErrTooLarge above it.
	maxData = 16 << 20
	// maxUser is the longest Record.User filestore holds; Save returns
	// sesh.ErrTooLarge above it.
	maxUser = 64 << 10

	maxFileLen = headerLen + maxUser + maxData + trailerLen
)

// ErrCorrupt is wrapped by the errors filestore returns for a record file
// it cannot trust: truncated, malformed, failing its checksum, holding
// another key, a symbolic link or not a regular file. It is a store
// failure, not [sesh.ErrNotFound]: the record is not known to be absent.
// Delete removes such a file.
var ErrCorrupt = fmt.Errorf("filestore: corrupt record file (%w)", sesh.ErrCorrupt)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileRecord is the content of one record file.
type fileRecord struct {
	key     sesh.Key
	tomb    bool
	kind    sesh.Kind
	version uint64
	exp     int64 // Unix ms
	user    string
	data    []byte
}

// encode returns the file content for r.
func encode(r *fileRecord) []byte {
	n := headerLen + len(r.user) + len(r.data) + trailerLen
	b := make([]byte, n)
	copy(b, magic)
	b[4] = formatVersion
	if r.tomb {
		b[5] = flagTombstone
	}
	b[6] = byte(r.kind)
	copy(b[8:40], r.key[:])
	binary.BigEndian.PutUint64(b[40:], r.version)
	binary.BigEndian.PutUint64(b[48:], uint64(r.exp))
	binary.BigEndian.PutUint32(b[56:], uint32(len(r.user)))
	binary.BigEndian.PutUint32(b[60:], uint32(len(r.data)))
	copy(b[headerLen:], r.user)
	copy(b[headerLen+len(r.user):], r.data)
	binary.BigEndian.PutUint32(b[n-trailerLen:], crc32.Checksum(b[:n-trailerLen], castagnoli))
	return b
}

// decode parses a record file. Lengths are checked against the buffer
// before anything is sliced or allocated. The data of the result aliases b.
func decode(b []byte) (fileRecord, error) {
	var r fileRecord
	if len(b) < headerLen+trailerLen {
		return r, fmt.Errorf("%w: truncated (%d bytes)", ErrCorrupt, len(b))
	}
	if string(b[:4]) != magic {
		return r, fmt.Errorf("%w: bad magic %q", ErrCorrupt, b[:4])
	}
	if b[4] != formatVersion {
		return r, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, b[4])
	}
	if b[5]&^flagTombstone != 0 || b[7] != 0 {
		return r, fmt.Errorf("%w: unknown flags", ErrCorrupt)
	}
	userLen := binary.BigEndian.Uint32(b[56:])
	dataLen := binary.BigEndian.Uint32(b[60:])
	if userLen > maxUser || dataLen > maxData {
		return r, fmt.Errorf("%w: lengths %d, %d out of range", ErrCorrupt, userLen, dataLen)
	}
	if want := headerLen + int(userLen) + int(dataLen) + trailerLen; len(b) != want {
		return r, fmt.Errorf("%w: %d bytes, want %d", ErrCorrupt, len(b), want)
	}
	end := len(b) - trailerLen
	if crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:]) {
		return r, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	r.tomb = b[5]&flagTombstone != 0
	r.kind = sesh.Kind(b[6])
	copy(r.key[:], b[8:40])
	r.version = binary.BigEndian.Uint64(b[40:])
	r.exp = int64(binary.BigEndian.Uint64(b[48:]))
	if r.tomb && (userLen != 0 || dataLen != 0 || r.version != 0 || r.kind != 0) {
		return r, fmt.Errorf("%w: tombstone with content", ErrCorrupt)
	}
	u := headerLen + int(userLen)
	r.user = string(b[headerLen:u])
	r.data = b[u:end:end]
	return r, nil
}

// record returns r as a sesh.Record.
func (r *fileRecord) record() sesh.Record {
	return sesh.Record{
		Data:    r.data,
		Version: r.version,
		Expires: time.UnixMilli(r.exp),
		User:    r.user,
		Kind:    r.kind,
	}
}
