package main

import (
	"cmp"
	"flag"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/seal"
)

// pageSize is how many records each listing call asks the store for.
const pageSize = 500

// isSet reports whether the flag name was given.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// ---- list

func listFlags(fs *flag.FlagSet) func(*cli, []string) error {
	user := fs.String("user", "", "list only the sessions of `USER` (the store must index users)")
	limit := fs.Int("limit", 0, "print at most `N` sessions (0: all)")
	asJSON := fs.Bool("json", false, "print a JSON array")
	return func(c *cli, _ []string) error {
		syn := c.cmd.synopsis()
		if *limit < 0 {
			return usagef(syn, "list: --limit must not be negative")
		}
		if isSet(fs, "user") && *user == "" {
			return usagef(syn, "list: --user needs a user name (anonymous sessions have none: list them all)")
		}
		if err := c.open(); err != nil {
			return err
		}
		var w sessionWriter
		if *asJSON {
			w = jsonSessions{newJSONArray(c.stdout)}
		} else {
			w = newTable(c.stdout)
		}
		var err error
		if *user != "" {
			err = c.listUser(w, *user, *limit)
		} else {
			err = c.listAll(w, *limit)
		}
		if cerr := w.close(); err == nil {
			err = cerr
		}
		return err
	}
}

func (c *cli) listUser(w sessionWriter, user string, limit int) error {
	devices, err := c.ms.m.Sessions(c.ctx, user)
	if err != nil {
		return c.ms.storeErr("list", err)
	}
	for i, d := range devices {
		if limit > 0 && i == limit {
			break
		}
		if err := w.row(fromDevice(user, d)); err != nil {
			return err
		}
	}
	return nil
}

// eachSession calls f for every live session, page by page, once each
// (a store may list a record twice).
func (c *cli) eachSession(f func(sesh.SessionInfo) (more bool, err error)) error {
	seen := make(map[string]bool)
	cursor := ""
	for {
		page, next, err := c.ms.m.ListSessions(c.ctx, cursor, pageSize)
		if err != nil {
			return err
		}
		for _, si := range page {
			if seen[si.Handle] {
				continue
			}
			seen[si.Handle] = true
			more, err := f(si)
			if err != nil || !more {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

func (c *cli) listAll(w sessionWriter, limit int) error {
	n := 0
	err := c.eachSession(func(si sesh.SessionInfo) (bool, error) {
		n++
		return limit == 0 || n < limit, w.row(fromInfo(si))
	})
	if err != nil {
		return c.ms.storeErr("list", err)
	}
	return nil
}

// ---- show

func showFlags(fs *flag.FlagSet) func(*cli, []string) error {
	asJSON := fs.Bool("json", false, "print a JSON object")
	return func(c *cli, pos []string) error {
		h := strings.TrimSpace(pos[0])
		if h == "" {
			return usagef(c.cmd.synopsis(), "show: empty handle")
		}
		if err := c.open(); err != nil {
			return err
		}
		si, err := c.ms.m.FindSession(c.ctx, h)
		if err != nil {
			return c.ms.storeErr("show", err)
		}
		if *asJSON {
			return writeJSON(c.stdout, fromInfo(si))
		}
		return c.showText(si)
	}
}

func (c *cli) showText(si sesh.SessionInfo) error {
	user := safe(si.User)
	if si.User == "" {
		user = "(anonymous)"
	}
	rows := [][2]string{
		{"handle", safe(si.Handle)},
		{"user", user},
		{"key", c.keyLabel(si.KeyID)},
		{"expires", timeCell(si.Expires)},
	}
	if si.Unreadable {
		rows = append(rows, [2]string{"unreadable", "yes: sealed under a key that SESH_KEYS lacks, so nothing more is known"})
	} else {
		yes := map[bool]string{true: "yes (restored by a remember-me token)", false: "no"}
		rows = append(rows,
			[2]string{"created", timeCell(si.Created)},
			[2]string{"last seen", timeCell(si.LastSeen)},
			[2]string{"logged in", timeCell(si.AuthTime)},
			[2]string{"ip", cell(si.IP, 0)},
			[2]string{"user agent", cell(si.UserAgent, 0)},
			[2]string{"remembered", yes[si.Remembered]},
		)
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(c.stdout, "%-11s %s\n", r[0]+":", r[1]); err != nil {
			return err
		}
	}
	return nil
}

// keyLabel describes a key ID by its place in SESH_KEYS.
func (c *cli) keyLabel(id uint32) string {
	if id == 0 {
		return "unknown (not a sealed record)"
	}
	ids := c.ms.keys.IDs()
	switch i := slices.Index(ids, id); {
	case i == 0:
		return fmt.Sprintf("%d (current)", id)
	case i > 0:
		return fmt.Sprintf("%d (old)", id)
	}
	return fmt.Sprintf("%d (not in SESH_KEYS)", id)
}

// ---- revoke

func revokeFlags(fs *flag.FlagSet) func(*cli, []string) error {
	h := fs.String("handle", "", "end the session with handle `H`")
	user := fs.String("user", "", "end every session and remember-me token of `USER`")
	all := fs.Bool("all", false, "end every session and remember-me token in the store (needs --yes)")
	yes := fs.Bool("yes", false, "confirm --all")
	return func(c *cli, _ []string) error {
		syn := c.cmd.synopsis()
		modes := 0
		for _, name := range []string{"handle", "user", "all"} {
			if isSet(fs, name) {
				modes++
			}
		}
		switch {
		case modes != 1:
			return usagef(syn, "revoke: give exactly one of --handle, --user and --all")
		case isSet(fs, "handle") && strings.TrimSpace(*h) == "":
			return usagef(syn, "revoke: --handle needs a session handle, as 'seshctl list' shows")
		case isSet(fs, "user") && *user == "":
			return usagef(syn, "revoke: --user needs a user name")
		case *all && !*yes:
			return usagef(syn, "revoke: --all ends every session and remember-me token in the store, logging every user out; add --yes to confirm")
		case isSet(fs, "all") && !*all:
			return usagef(syn, "revoke: --all=false revokes nothing")
		}
		if err := c.open(); err != nil {
			return err
		}
		m := c.ms.m
		switch {
		case *h != "":
			if err := m.RevokeSession(c.ctx, strings.TrimSpace(*h)); err != nil {
				return c.ms.storeErr("revoke", err)
			}
			fmt.Fprintln(c.stdout, "revoked 1 session")
		case *user != "":
			n, err := m.RevokeAll(c.ctx, *user)
			if err != nil {
				return c.ms.storeErr("revoke", fmt.Errorf("after %s: %w", plural(n, "session"), err))
			}
			fmt.Fprintf(c.stdout, "revoked %s of user %s, and the user's remember-me tokens\n", plural(n, "session"), safe(*user))
		default:
			p := newProgress(c.stderr, "revoked %d records so far")
			n, err := m.RevokeEverything(c.ctx, func(n int) { p.update(n) })
			if err != nil {
				return c.ms.storeErr("revoke", fmt.Errorf("interrupted after revoking %s: %w", plural(n, "record"), err))
			}
			fmt.Fprintf(c.stdout, "revoked %s (sessions and remember-me tokens)\n", plural(n, "record"))
		}
		return nil
	}
}

// ---- sweep

func batchFlag(fs *flag.FlagSet) *int {
	return fs.Int("batch", pageSize, "records per store call (`N`)")
}

func (c *cli) checkBatch(n int) error {
	if n <= 0 {
		return usagef(c.cmd.synopsis(), "%s: --batch must be positive", c.cmd.name)
	}
	return nil
}

func sweepFlags(fs *flag.FlagSet) func(*cli, []string) error {
	batch := batchFlag(fs)
	return func(c *cli, _ []string) error {
		if err := c.checkBatch(*batch); err != nil {
			return err
		}
		if err := c.open(); err != nil {
			return err
		}
		if _, ok := c.ms.m.Store().(sesh.Sweeper); !ok {
			fmt.Fprintf(c.stdout, "nothing to sweep: the %s store expires records itself\n", c.ms.scheme)
			return nil
		}
		p := newProgress(c.stderr, "swept %d records so far")
		total := 0
		for {
			n, err := c.ms.m.Sweep(c.ctx, *batch)
			total += n
			if err != nil {
				return fmt.Errorf("sweep: interrupted after removing %s: %w", plural(total, "record"), err)
			}
			p.update(total)
			if n < *batch {
				break
			}
		}
		fmt.Fprintf(c.stdout, "swept %s (expired records and lapsed tombstones)\n", plural(total, "record"))
		return nil
	}
}

// ---- stats

// keyStats counts the records sealed under one key.
type keyStats struct {
	KeyID    uint32 `json:"key_id"` // 0: not a sealed record
	Status   string `json:"status"` // current, old, unknown
	Sessions int    `json:"sessions"`
	Tokens   int    `json:"tokens"`
}

type stats struct {
	Sessions      int         `json:"sessions"`
	Authenticated int         `json:"authenticated"`
	Anonymous     int         `json:"anonymous"`
	DistinctUsers int         `json:"distinct_users"`
	Remembered    int         `json:"remembered"`
	Unreadable    int         `json:"unreadable"`
	Tokens        int         `json:"remember_tokens"`
	OldestCreated time.Time   `json:"oldest_created,omitzero"`
	CurrentKeyID  uint32      `json:"current_key_id"`
	ByKey         []*keyStats `json:"by_key"`
}

func statsFlags(fs *flag.FlagSet) func(*cli, []string) error {
	asJSON := fs.Bool("json", false, "print a JSON object")
	return func(c *cli, _ []string) error {
		if err := c.open(); err != nil {
			return err
		}
		st, err := c.stats()
		if err != nil {
			return c.ms.storeErr("stats", err)
		}
		if *asJSON {
			return writeJSON(c.stdout, st)
		}
		return c.statsText(st)
	}
}

func (c *cli) stats() (*stats, error) {
	st := &stats{CurrentKeyID: c.ms.keys.Current(), ByKey: []*keyStats{}}
	byKey := make(map[uint32]*keyStats)
	key := func(id uint32) *keyStats {
		if byKey[id] == nil {
			status := "unknown"
			if i := slices.Index(c.ms.keys.IDs(), id); i == 0 {
				status = "current"
			} else if i > 0 {
				status = "old"
			}
			byKey[id] = &keyStats{KeyID: id, Status: status}
		}
		return byKey[id]
	}
	users := make(map[string]bool)
	p := newProgress(c.stderr, "counted %d sessions so far")
	err := c.eachSession(func(si sesh.SessionInfo) (bool, error) {
		st.Sessions++
		p.update(st.Sessions)
		if si.User == "" {
			st.Anonymous++
		} else {
			st.Authenticated++
			users[si.User] = true
		}
		if si.Remembered {
			st.Remembered++
		}
		if si.Unreadable {
			st.Unreadable++
		}
		if !si.Created.IsZero() && (st.OldestCreated.IsZero() || si.Created.Before(st.OldestCreated)) {
			st.OldestCreated = si.Created.UTC()
		}
		key(si.KeyID).Sessions++
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	st.DistinctUsers = len(users)
	// SessionInfo covers sessions only: remember-me tokens are counted
	// from the store's own listing.
	l, ok := c.ms.m.Store().(sesh.Lister)
	if !ok {
		return nil, sesh.ErrNotListable
	}
	seen := make(map[sesh.Key]bool)
	tp := newProgress(c.stderr, "scanned %d records for remember-me tokens so far")
	scanned := 0
	for cursor := ""; ; {
		entries, next, err := l.List(c.ctx, cursor, pageSize)
		if err != nil {
			return nil, fmt.Errorf("%w: list: %w", sesh.ErrStoreUnavailable, err)
		}
		now := clock()
		for _, e := range entries {
			scanned++
			if e.Record.Kind != sesh.KindToken || seen[e.Key] || !e.Record.Expires.After(now) {
				continue
			}
			seen[e.Key] = true
			st.Tokens++
			id, _ := seal.KeyID(e.Record.Data)
			key(id).Tokens++
		}
		tp.update(scanned)
		if next == "" {
			break
		}
		cursor = next
	}
	for _, ks := range byKey {
		st.ByKey = append(st.ByKey, ks)
	}
	slices.SortFunc(st.ByKey, func(a, b *keyStats) int { return cmp.Compare(a.KeyID, b.KeyID) })
	return st, nil
}

func (c *cli) statsText(st *stats) error {
	w := c.stdout
	fmt.Fprintf(w, "sessions            %d\n", st.Sessions)
	fmt.Fprintf(w, "  authenticated     %d\n", st.Authenticated)
	fmt.Fprintf(w, "  anonymous         %d\n", st.Anonymous)
	fmt.Fprintf(w, "  remembered        %d   (restored by a remember-me token)\n", st.Remembered)
	fmt.Fprintf(w, "  unreadable        %d   (sealed under keys not in SESH_KEYS)\n", st.Unreadable)
	fmt.Fprintf(w, "distinct users      %d\n", st.DistinctUsers)
	fmt.Fprintf(w, "remember-me tokens  %d\n", st.Tokens)
	fmt.Fprintf(w, "oldest created      %s\n", timeCell(st.OldestCreated))
	fmt.Fprintf(w, "records by key:\n")
	if len(st.ByKey) == 0 {
		fmt.Fprintf(w, "  (none)\n")
	}
	for _, ks := range st.ByKey {
		fmt.Fprintf(w, "  %-30s sessions %d, tokens %d\n", c.keyLabel(ks.KeyID), ks.Sessions, ks.Tokens)
	}
	return nil
}

// ---- keygen

func keygenFlags(fs *flag.FlagSet) func(*cli, []string) error {
	id := fs.Uint64("id", 0, "the new key's `ID` (default: one more than the largest in SESH_KEYS, or 1)")
	return func(c *cli, _ []string) error {
		syn := c.cmd.synopsis()
		existing, err := keyIDs(c.getenv("SESH_KEYS"))
		if err != nil && !isSet(fs, "id") {
			return fmt.Errorf("keygen: cannot pick the next key ID from SESH_KEYS (%w); give one with --id", err)
		}
		newID := uint64(1)
		switch {
		case isSet(fs, "id"):
			if *id == 0 || *id > math.MaxUint32 {
				return usagef(syn, "keygen: --id must be between 1 and %d", uint32(math.MaxUint32))
			}
			if slices.Contains(existing, uint32(*id)) {
				return fmt.Errorf("keygen: key ID %d is already in SESH_KEYS: pick another with --id", *id)
			}
			newID = *id
		case len(existing) > 0:
			newID = uint64(slices.Max(existing)) + 1
			if newID > math.MaxUint32 {
				return fmt.Errorf("keygen: SESH_KEYS holds key ID %d, the largest there is: give a free one with --id", uint32(math.MaxUint32))
			}
		}
		k, err := seal.GenerateKey(uint32(newID))
		if err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		if _, err := fmt.Fprintln(c.stdout, k.Encode()); err != nil {
			return err
		}
		if len(existing) == 0 {
			fmt.Fprintf(c.stderr, "seshctl: set SESH_KEYS to the key above (key ID %d); keep it secret.\n", newID)
			return nil
		}
		fmt.Fprintf(c.stderr, `seshctl: to make key %d current, prepend it to SESH_KEYS, keeping the old keys
so that existing sessions still open:
    SESH_KEYS="<the key above>,$SESH_KEYS"
With several instances, first append it on all of them (so that all can open
what it seals), then move it to the front. Then run 'seshctl reseal'.
`, newID)
		return nil
	}
}

// keyIDs returns the key IDs of a SESH_KEYS value, nil if it is empty.
// It does not judge the secrets (keygen serves to replace weak keys too).
func keyIDs(v string) ([]uint32, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var ids []uint32
	for i, item := range strings.Split(v, ",") {
		idStr, _, ok := strings.Cut(strings.TrimSpace(item), ":")
		id, err := strconv.ParseUint(strings.TrimSpace(idStr), 10, 32)
		if !ok || err != nil || id == 0 {
			// Never quote the item: it holds a secret.
			return nil, fmt.Errorf("item %d is not ID:secret with a decimal ID from 1", i+1)
		}
		ids = append(ids, uint32(id))
	}
	return ids, nil
}

// ---- reseal

func resealFlags(fs *flag.FlagSet) func(*cli, []string) error {
	batch := batchFlag(fs)
	return func(c *cli, _ []string) error {
		if err := c.checkBatch(*batch); err != nil {
			return err
		}
		if err := c.open(); err != nil {
			return err
		}
		p := newProgress(c.stderr, "scanned up to %d records, re-sealed %d so far")
		total, pages := 0, 0
		for cursor := ""; ; {
			n, next, err := c.ms.m.Reseal(c.ctx, cursor, *batch)
			total += n
			pages++
			if err != nil {
				return c.ms.storeErr("reseal", fmt.Errorf("interrupted after re-sealing %s: %w", plural(total, "record"), err))
			}
			p.update(pages**batch, total)
			if next == "" {
				break
			}
			cursor = next
		}
		fmt.Fprintf(c.stdout, "re-sealed %s under key %d\n", plural(total, "record"), c.ms.keys.Current())
		fmt.Fprintln(c.stderr, "seshctl: records that no key of SESH_KEYS opens were left alone; 'seshctl stats' shows what remains under each key")
		return nil
	}
}
