package sesh

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"slices"
	"strings"
)

// Message is one flash message.
type Message struct {
	Kind string // e.g. "success", "error"
	Text string
}

// Flash holds one-hop messages: a message added in one request is shown
// by a later one, once. A message stays stored until a request reads it
// with Pop, so a request that does not read flash does not consume it.
// Popping is atomic across parallel requests: each stored message is
// returned by exactly one Pop.
//
// Flash messages are plain text; escape them when rendering.
type Flash struct{ s *Session }

// Flash returns the session's flash messages.
func (s *Session) Flash() Flash { return Flash{s: s} }

const flashPrefix = internalPrefix + "f"

// Add stores a message for a later request.
func (f Flash) Add(kind, text string) error {
	s := f.s
	if s.detached {
		return ErrNoMiddleware
	}
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(s.m.now().UnixNano()))
	if _, err := io.ReadFull(randReader, b[8:]); err != nil {
		return err
	}
	return s.setRaw(flashPrefix+hex.EncodeToString(b[:]), []byte(kind+"\x00"+text))
}

// Now adds a message for this request only; it is never stored.
func (f Flash) Now(kind, text string) {
	s := f.s
	if s.detached {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.extra()
	x.flashNow = append(x.flashNow, Message{Kind: kind, Text: text})
}

func decodeMessage(v []byte) Message {
	kind, text, _ := strings.Cut(string(v), "\x00")
	return Message{Kind: kind, Text: text}
}

func matchKind(kinds []string, kind string) bool {
	return len(kinds) == 0 || slices.Contains(kinds, kind)
}

// stored returns the keys of stored, unpopped messages of the given kinds
// in the order they were added. The caller holds s.mu.
func (s *Session) storedFlash(kinds []string) (keys []string, msgs []Message) {
	for _, k := range s.keys(flashPrefix, false) {
		v, _ := s.value(k)
		if m := decodeMessage(v); matchKind(kinds, m.Kind) {
			keys = append(keys, k)
			msgs = append(msgs, m)
		}
	}
	return keys, msgs
}

// Peek returns the messages of the given kinds (all kinds if none are
// given), oldest first, without consuming them.
func (f Flash) Peek(kinds ...string) []Message {
	s := f.s
	if s.detached {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return nil
	}
	_, msgs := s.storedFlash(kinds)
	if s.x != nil {
		for _, m := range s.x.flashNow {
			if matchKind(kinds, m.Kind) {
				msgs = append(msgs, m)
			}
		}
	}
	return msgs
}

// Pop returns the messages of the given kinds (all kinds if none are
// given), oldest first, and consumes them. Stored messages are removed
// from the store at once, so a parallel request cannot show them too; if
// that write fails, Pop returns only this request's [Flash.Now] messages
// and the session reports the failure.
func (f Flash) Pop(kinds ...string) []Message {
	s := f.s
	if s.detached {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return nil
	}
	keys, _ := s.storedFlash(kinds)
	var out []Message
	if len(keys) > 0 {
		x := s.extra()
		if x.popped == nil {
			x.popped = make(map[string]Message)
		}
		for _, k := range keys {
			v, _ := s.value(k)
			x.popped[k] = decodeMessage(v)
			s.setChange(k, change{del: true})
		}
		if s.version > 0 && !s.renew && len(s.retiring()) == 0 {
			ctx, cancel := s.m.storeCtx(s.commitCtx())
			err := s.saveLive(ctx, s.m.now(), false)
			cancel()
			if err != nil {
				s.failed = err
				s.dropPopped()
				return f.takeNow(kinds)
			}
		}
		for _, k := range keys {
			if m, ok := s.x.popped[k]; ok {
				out = append(out, m)
			}
		}
	}
	return append(out, f.takeNow(kinds)...)
}

// takeNow removes and returns this request's Now messages of the given
// kinds. The caller holds s.mu.
func (f Flash) takeNow(kinds []string) []Message {
	s := f.s
	if s.x == nil {
		return nil
	}
	var out []Message
	rest := s.x.flashNow[:0]
	for _, m := range s.x.flashNow {
		if matchKind(kinds, m.Kind) {
			out = append(out, m)
		} else {
			rest = append(rest, m)
		}
	}
	s.x.flashNow = rest
	return out
}

// Keep stores again, for the next request, the messages of the given
// kinds (all if none are given) that this request popped.
func (f Flash) Keep(kinds ...string) {
	s := f.s
	if s.detached {
		return
	}
	s.mu.Lock()
	var popped map[string]Message // nil when nothing was popped
	if s.x != nil {
		popped = s.x.popped
	}
	keys := make([]string, 0, len(popped))
	for k, m := range popped {
		if matchKind(kinds, m.Kind) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var msgs []Message
	for _, k := range keys {
		msgs = append(msgs, popped[k])
		delete(popped, k)
	}
	s.mu.Unlock()
	for _, m := range msgs {
		_ = f.Add(m.Kind, m.Text)
	}
}

// Reflash keeps every message this request popped for the next request;
// it is Keep with no kinds.
func (f Flash) Reflash() { f.Keep() }
