package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/seal"
	"github.com/seshgo/sesh/storeurl"
)

// managed is a manager on the store, as the application would build it.
type managed struct {
	m      *sesh.Manager
	keys   *seal.Ring
	scheme string // the store URL's scheme, lower case, for messages
	closer io.Closer
}

func (ms *managed) close() { ms.closer.Close() }

// open opens the store named by --store or SESH_STORE and builds a
// manager on it, c.ms, with the configuration of the SESH_* variables. It
// reports a missing store and bad variables together, before it connects.
// Commands call it once they have checked their flags.
func (c *cli) open() error {
	ms, err := c.openManager()
	if err != nil {
		return err
	}
	c.ms = ms
	return nil
}

func (c *cli) openManager() (*managed, error) {
	rawURL, from := strings.TrimSpace(c.storeURL), "--store"
	if rawURL == "" {
		rawURL, from = strings.TrimSpace(c.getenv("SESH_STORE")), "SESH_STORE"
	}
	var errs []error
	if rawURL == "" {
		errs = append(errs, errors.New("no store: give --store URL or set SESH_STORE to a store URL such as file:/var/lib/myapp/sessions, redis://localhost:6379/0 or postgres://user@host/db"))
	}
	var cfg sesh.Config
	if strings.TrimSpace(c.getenv("SESH_KEYS")) == "" {
		errs = append(errs, errors.New("SESH_KEYS is not set: seshctl needs the application's key ring (ID:base64url items, current key first) to read and write its sessions"))
	} else {
		var err error
		if cfg, err = sesh.ConfigFromEnv(c.getenv); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The manager's warnings go to stderr; its routine events (revoked,
	// swept) are the tool's own output.
	cfg.Logger = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	scheme, _, _ := strings.Cut(rawURL, ":")
	scheme = strings.ToLower(scheme)
	store, closer, err := storeurl.Open(c.ctx, rawURL)
	if err != nil {
		// storeurl's errors never hold the URL's password.
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	m, err := sesh.New(store, cfg)
	if err != nil {
		closer.Close()
		return nil, err
	}
	if scheme == "memory" {
		fmt.Fprintln(c.stderr, "seshctl: note: memory: is a new, empty store private to this process")
	}
	return &managed{m: m, keys: cfg.Keys, scheme: scheme, closer: closer}, nil
}

// storeErr explains the errors of stores that lack a capability.
func (ms *managed) storeErr(what string, err error) error {
	switch {
	case errors.Is(err, sesh.ErrNotListable):
		return fmt.Errorf("%s: the %s store cannot list its records, so seshctl cannot %s", what, ms.scheme, whatLong(what))
	case errors.Is(err, sesh.ErrNotSupported):
		return fmt.Errorf("%s: the %s store keeps no index of sessions by user, so seshctl cannot find a user's sessions", what, ms.scheme)
	case errors.Is(err, sesh.ErrNoSuchSession):
		return fmt.Errorf("%s: no such session (the handle names no live session; 'seshctl list' shows them)", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func whatLong(what string) string {
	switch what {
	case "list":
		return "list sessions"
	case "show":
		return "find a session by its handle"
	case "revoke":
		return "find sessions to revoke"
	case "stats":
		return "count its sessions"
	case "reseal":
		return "find records to re-seal"
	}
	return what
}
