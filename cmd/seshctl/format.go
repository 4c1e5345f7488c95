package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/seshgo/sesh"
)

// sessionJSON is a session in --json output. Unknown times (those of a
// session sealed under a key seshctl lacks) are left out, as is key_id
// where it is not known.
type sessionJSON struct {
	Handle     string    `json:"handle"`
	User       string    `json:"user"`
	Created    time.Time `json:"created,omitzero"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	AuthTime   time.Time `json:"auth_time,omitzero"`
	Expires    time.Time `json:"expires,omitzero"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
	Remembered bool      `json:"remembered"`
	KeyID      uint32    `json:"key_id,omitzero"`
	Unreadable bool      `json:"unreadable"`
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func fromInfo(si sesh.SessionInfo) sessionJSON {
	return sessionJSON{
		Handle: si.Handle, User: si.User,
		Created: utc(si.Created), LastSeen: utc(si.LastSeen), AuthTime: utc(si.AuthTime), Expires: utc(si.Expires),
		IP: si.IP, UserAgent: si.UserAgent, Remembered: si.Remembered, KeyID: si.KeyID, Unreadable: si.Unreadable,
	}
}

func fromDevice(user string, d sesh.Device) sessionJSON {
	return sessionJSON{
		Handle: d.Handle, User: user,
		Created: utc(d.Created), LastSeen: utc(d.LastSeen), AuthTime: utc(d.AuthTime),
		IP: d.IP, UserAgent: d.UserAgent, Remembered: d.Remembered,
	}
}

// safe returns s for a terminal: as it is if it is printable UTF-8
// without tabs, line breaks or other control or format characters, and
// otherwise quoted with Go escapes, so that a client's user agent cannot
// move the cursor, fake table rows or reverse the text.
func safe(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		// IsPrint: letters, marks, numbers, punctuation, symbols and the
		// ASCII space; not other spaces, nor format characters such as
		// U+202E, which reverses the text after it.
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// cell is safe(s) for a table cell, "-" when empty, cut to max runes.
func cell(s string, max int) string {
	if s == "" {
		return "-"
	}
	s = safe(s)
	if max > 0 && utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max-1]) + "…"
	}
	return s
}

// timeCell formats a time for tables: UTC, to the second.
func timeCell(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// uaWidth is the width of the USER-AGENT column.
const uaWidth = 40

// table writes sessions as aligned columns. It flushes every tableBlock
// rows, so that a long listing streams (each block aligned by itself).
type table struct {
	tw   *tabwriter.Writer
	rows int
}

const tableBlock = 1000

func newTable(w io.Writer) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	t.header()
	return t
}

func (t *table) header() {
	fmt.Fprintln(t.tw, "HANDLE\tUSER\tCREATED\tLAST-SEEN\tEXPIRES\tIP\tUSER-AGENT")
}

func (t *table) row(s sessionJSON) error {
	user := cell(s.User, 0)
	if s.User == "" {
		user = "(anonymous)"
	}
	ua := cell(s.UserAgent, uaWidth)
	if s.Unreadable {
		ua = fmt.Sprintf("(unreadable: sealed under key %d)", s.KeyID)
	}
	fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", safe(s.Handle), user,
		timeCell(s.Created), timeCell(s.LastSeen), timeCell(s.Expires), cell(s.IP, 0), ua)
	t.rows++
	if t.rows%tableBlock == 0 {
		return t.tw.Flush()
	}
	return nil
}

func (t *table) close() error { return t.tw.Flush() }

// jsonArray streams a JSON array, one element a line.
type jsonArray struct {
	w io.Writer
	n int
}

func newJSONArray(w io.Writer) *jsonArray {
	io.WriteString(w, "[")
	return &jsonArray{w: w}
}

func (a *jsonArray) add(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "\n  "
	}
	a.n++
	_, err = fmt.Fprintf(a.w, "%s%s", sep, b)
	return err
}

func (a *jsonArray) close() error {
	end := "\n]\n"
	if a.n == 0 {
		end = "]\n"
	}
	_, err := io.WriteString(a.w, end)
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// sessionWriter is where list writes sessions: a table or a JSON array.
type sessionWriter interface {
	row(sessionJSON) error
	close() error
}

type jsonSessions struct{ a *jsonArray }

func (j jsonSessions) row(s sessionJSON) error { return j.a.add(s) }
func (j jsonSessions) close() error            { return j.a.close() }

// Progress of long runs is reported on stderr every progressEvery items,
// or when progressInterval has passed since the last report (0: never).
// Tests change these before any test runs.
var (
	progressEvery    = 1000
	progressInterval = time.Second
	clock            = time.Now
)

// progress reports the progress of a long run on stderr.
type progress struct {
	w      io.Writer
	format string // the count, then update's other arguments
	last   int
	lastT  time.Time
}

func newProgress(w io.Writer, format string) *progress {
	return &progress{w: w, format: format, lastT: clock()}
}

// update reports n, the count so far, if it is time to, formatting the
// count and args with the progress's format.
func (p *progress) update(n int, args ...any) {
	due := n-p.last >= progressEvery
	if !due && progressInterval > 0 {
		due = clock().Sub(p.lastT) >= progressInterval
	}
	if !due || n == p.last {
		return
	}
	p.last, p.lastT = n, clock()
	fmt.Fprintf(p.w, "seshctl: "+p.format+"\n", append([]any{n}, args...)...)
}

// plural returns "n thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	if strings.HasSuffix(thing, "y") {
		return strconv.Itoa(n) + " " + strings.TrimSuffix(thing, "y") + "ies"
	}
	return strconv.Itoa(n) + " " + thing + "s"
}
