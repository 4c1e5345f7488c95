package sesh

import (
	"testing"
	"unsafe"
)

// TestSizes holds the structs allocated for every request, the Session
// (which carries the request's context and the copy of the request passed
// on), and for every write, the record and the first changes' buffers,
// within the allocator's size classes that they fit today (640, 320 and
// 480 bytes): a field that pushes either past its class costs every
// request the next class up. Move the field elsewhere (Session.x holds
// what few requests use), or raise the limit and say why (see
// bench/PROFILE.md).
func TestSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		size, max uintptr
	}{
		{"Session", unsafe.Sizeof(Session{}), 640},
		{"record", unsafe.Sizeof(record{}), 320},
		{"draftBuf", unsafe.Sizeof(draftBuf{}), 480},
	} {
		if c.size > c.max {
			t.Errorf("%s is %d bytes, above its %d-byte size class", c.name, c.size, c.max)
		}
	}
}
