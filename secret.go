package sesh

import (
	"fmt"
	"io"
)

const secretPrefix = internalPrefix + "s"

// Secret returns the session's secret called name: 32 random bytes kept in
// the session, for tokens that must be bound to it, such as the CSRF
// token of package csrf. With create, a missing secret is made (which
// stores the session); without, a missing one gives nil and no error.
//
// Every secret is dropped when the session logs in, renews or is
// destroyed, so tokens derived from it die with it.
func (s *Session) Secret(name string, create bool) ([]byte, error) {
	if s.detached {
		return nil, ErrNoMiddleware
	}
	if !validKey(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidKey, name)
	}
	k := secretPrefix + name
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ensure() {
		return nil, s.failed
	}
	if v, ok := s.value(k); ok && len(v) == 32 {
		return append([]byte(nil), v...), nil
	}
	if !create {
		return nil, nil
	}
	v := make([]byte, 32)
	if _, err := io.ReadFull(randReader, v); err != nil {
		return nil, fmt.Errorf("sesh: reading random secret: %w", err)
	}
	s.setChange(k, change{val: v})
	return append([]byte(nil), v...), nil
}

// dropSecrets deletes every secret. The caller holds s.mu.
func (s *Session) dropSecrets() {
	for _, k := range s.keys(secretPrefix, false) {
		s.setChange(k, change{del: true})
	}
}
