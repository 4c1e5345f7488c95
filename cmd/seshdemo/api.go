package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/seshgo/sesh"
)

// Limits of the API.
const (
	maxDelay      = 10 * time.Second
	maxKeyLen     = 64
	maxMessageLen = 500
)

// Session keys.
const (
	counterKey = "counter"
	kvBag      = "kv"
)

func (a *app) apiRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/login", apiRoute{"POST": http.HandlerFunc(a.apiLogin)})
	mux.Handle("/api/logout", apiRoute{"POST": http.HandlerFunc(a.apiLogout)})
	mux.Handle("/api/me", apiRoute{"GET": http.HandlerFunc(a.apiMe)})
	mux.Handle("/api/counter", apiRoute{
		"GET": http.HandlerFunc(a.apiCounterGet),
		// Exclusive serialises the read-modify-write; nothing before it
		// touches the session.
		"POST": a.exclusive(http.HandlerFunc(a.apiCounterIncrement)),
	})
	mux.Handle("/api/kv/{key}", apiRoute{"GET": http.HandlerFunc(a.apiKVGet), "PUT": http.HandlerFunc(a.apiKVPut)})
	mux.Handle("/api/flash", apiRoute{"GET": http.HandlerFunc(a.apiFlashPop), "POST": http.HandlerFunc(a.apiFlashAdd)})
	mux.Handle("/api/sessions", apiRoute{"GET": http.HandlerFunc(a.apiSessions)})
	// One pattern for both, since "revoke-others" is not a handle.
	mux.HandleFunc("/api/sessions/{handle}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("handle") == "revoke-others" {
			apiRoute{"POST": http.HandlerFunc(a.apiRevokeOthers)}.ServeHTTP(w, r)
			return
		}
		apiRoute{"DELETE": http.HandlerFunc(a.apiRevoke)}.ServeHTTP(w, r)
	})
	mux.Handle("/api/password", apiRoute{"POST": http.HandlerFunc(a.apiPassword)})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		jsonError(w, http.StatusNotFound, "no such API endpoint")
	})
	return mux
}

func session(r *http.Request) *sesh.Session { return sesh.FromContext(r.Context()) }

// sessionFailed reports whether the request's session could not be
// loaded; the middleware then answers with the error handler, whatever
// the handler writes.
func sessionFailed(w http.ResponseWriter, r *http.Request) bool {
	if err := session(r).Err(); err != nil {
		errorHandler(w, r, err)
		return true
	}
	return false
}

// storeError answers a failed manager call.
func (a *app) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, sesh.ErrNotSupported):
		jsonError(w, http.StatusNotImplemented, "this session store keeps no index of sessions by user, so devices cannot be listed or signed out")
	case errors.Is(err, sesh.ErrTooLarge):
		jsonError(w, http.StatusRequestEntityTooLarge, "the session would be too large")
	default:
		a.logger.ErrorContext(r.Context(), "seshdemo: request failed", "path", r.URL.Path, "error", err)
		errorHandler(w, r, err)
	}
}

// requireUser returns the session's user, or answers 401.
func requireUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	if sessionFailed(w, r) {
		return "", false
	}
	user := session(r).User()
	if user == "" {
		jsonError(w, http.StatusUnauthorized, "sign in first")
		return "", false
	}
	return user, true
}

type userBody struct {
	User string `json:"user"`
}

func (a *app) apiLogin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User     string `json:"user"`
		Password string `json:"password"`
		Remember bool   `json:"remember"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if !a.users.check(body.User, body.Password) {
		jsonError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	s := session(r)
	s.Login(body.User)
	if body.Remember {
		s.Remember()
	}
	if sessionFailed(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, userBody{body.User})
}

func (a *app) apiLogout(w http.ResponseWriter, r *http.Request) {
	session(r).Logout()
	noContent(w)
}

func (a *app) apiMe(w http.ResponseWriter, r *http.Request) {
	if sessionFailed(w, r) {
		return
	}
	s := session(r)
	var body struct {
		User       *string `json:"user"`
		Remembered bool    `json:"remembered"`
	}
	if u := s.User(); u != "" {
		body.User, body.Remembered = &u, s.Remembered()
	}
	writeJSON(w, http.StatusOK, body)
}

type valueBody struct {
	Value int `json:"value"`
}

func (a *app) apiCounterGet(w http.ResponseWriter, r *http.Request) {
	if sessionFailed(w, r) {
		return
	}
	n, _ := sesh.Get[int](session(r), counterKey)
	writeJSON(w, http.StatusOK, valueBody{n})
}

func (a *app) apiCounterIncrement(w http.ResponseWriter, r *http.Request) {
	s := session(r)
	n, _ := sesh.Get[int](s, counterKey)
	n++
	if err := s.Set(counterKey, n); err != nil {
		a.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, valueBody{n})
}

// validKVKey reports whether k is 1 to 64 characters of [A-Za-z0-9_.-].
func validKVKey(k string) bool {
	if k == "" || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func (a *app) apiKVGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !validKVKey(key) {
		jsonError(w, http.StatusBadRequest, "a key is 1 to 64 characters of A-Z a-z 0-9 _ . -")
		return
	}
	if sessionFailed(w, r) {
		return
	}
	v, err := sesh.Lookup[json.RawMessage](session(r).Bag(kvBag), key)
	if err != nil {
		jsonError(w, http.StatusNotFound, "no value for this key")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Value json.RawMessage `json:"value"`
	}{v})
}

// apiKVPut stores a value after an optional delay. The session is loaded
// before the wait, so a PUT racing a logout holds a session that is gone
// when it writes: the commit fails with ErrSessionGone (409), and nothing
// is written back.
func (a *app) apiKVPut(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !validKVKey(key) {
		jsonError(w, http.StatusBadRequest, "a key is 1 to 64 characters of A-Z a-z 0-9 _ . -")
		return
	}
	var delay time.Duration
	if v := r.URL.Query().Get("delay_ms"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxDelay {
			jsonError(w, http.StatusBadRequest, "delay_ms must be an integer from 0 to 10000")
			return
		}
		delay = time.Duration(ms) * time.Millisecond
	}
	if sessionFailed(w, r) {
		return
	}
	var body struct {
		Value json.RawMessage `json:"value"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if body.Value == nil {
		jsonError(w, http.StatusBadRequest, `the body must be {"value": ...}`)
		return
	}
	if err := wait(r.Context(), delay); err != nil {
		jsonError(w, http.StatusServiceUnavailable, "the request was cancelled before the value was written")
		return
	}
	if err := session(r).Bag(kvBag).Set(key, body.Value); err != nil {
		a.storeError(w, r, err)
		return
	}
	noContent(w)
}

// wait waits for d, or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *app) apiFlashAdd(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Message string `json:"message"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if n := utf8.RuneCountInString(body.Message); n == 0 || n > maxMessageLen {
		jsonError(w, http.StatusBadRequest, "a message is 1 to 500 characters")
		return
	}
	if err := session(r).Flash().Add("info", body.Message); err != nil {
		a.storeError(w, r, err)
		return
	}
	noContent(w)
}

func (a *app) apiFlashPop(w http.ResponseWriter, r *http.Request) {
	if sessionFailed(w, r) {
		return
	}
	msgs := session(r).Flash().Pop()
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Text)
	}
	if sessionFailed(w, r) { // the pop could not be saved
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Messages []string `json:"messages"`
	}{out})
}

// deviceJSON is one entry of GET /api/sessions.
type deviceJSON struct {
	Handle    string `json:"handle"`
	Created   string `json:"created"`
	LastSeen  string `json:"last_seen"`
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
	Current   bool   `json:"current"`
}

func (a *app) apiSessions(w http.ResponseWriter, r *http.Request) {
	user, ok := requireUser(w, r)
	if !ok {
		return
	}
	devs, err := a.m.Sessions(r.Context(), user)
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	out := make([]deviceJSON, 0, len(devs))
	for _, d := range devs {
		out = append(out, deviceJSON{
			Handle:    d.Handle,
			Created:   d.Created.UTC().Format(time.RFC3339),
			LastSeen:  d.LastSeen.UTC().Format(time.RFC3339),
			IP:        d.IP,
			UserAgent: d.UserAgent,
			Current:   d.Current,
		})
	}
	writeJSON(w, http.StatusOK, struct {
		Sessions []deviceJSON `json:"sessions"`
	}{out})
}

func (a *app) apiRevoke(w http.ResponseWriter, r *http.Request) {
	user, ok := requireUser(w, r)
	if !ok {
		return
	}
	err := a.m.Revoke(r.Context(), user, r.PathValue("handle"))
	if errors.Is(err, sesh.ErrNoSuchSession) {
		jsonError(w, http.StatusNotFound, "no such session of yours")
		return
	}
	if err != nil {
		a.storeError(w, r, err)
		return
	}
	noContent(w)
}

func (a *app) apiRevokeOthers(w http.ResponseWriter, r *http.Request) {
	if _, ok := requireUser(w, r); !ok {
		return
	}
	if _, err := a.m.RevokeOthers(r.Context()); err != nil {
		a.storeError(w, r, err)
		return
	}
	noContent(w)
}

func (a *app) apiPassword(w http.ResponseWriter, r *http.Request) {
	user, ok := requireUser(w, r)
	if !ok {
		return
	}
	var body struct {
		Old string `json:"old"`
		New string `json:"new"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	switch err := a.changePassword(r.Context(), user, body.Old, body.New); {
	case err == nil:
		noContent(w)
	case errors.Is(err, errWrongPassword):
		jsonError(w, http.StatusUnauthorized, "wrong password")
	case errors.Is(err, errBadPassword):
		jsonError(w, http.StatusBadRequest, err.Error())
	default:
		a.storeError(w, r, err)
	}
}

var errWrongPassword = errors.New("wrong password")

// changePassword checks user's old password, ends the user's other
// sessions and remember-me tokens, renews the current session, and sets
// the new password. ctx is the request's.
func (a *app) changePassword(ctx context.Context, user, old, new string) error {
	if !a.users.check(user, old) {
		return errWrongPassword
	}
	if !validPassword(new) {
		return errBadPassword
	}
	err := a.m.PasswordChanged(ctx)
	if errors.Is(err, sesh.ErrNotSupported) {
		// No user index (memcached): other sessions and remember-me tokens
		// cannot be found. Renew this one at least.
		a.logger.WarnContext(ctx, "seshdemo: password changed, but the store cannot end the user's other sessions", "user", user)
		sesh.FromContext(ctx).Renew()
		err = nil
	}
	if err != nil {
		return err
	}
	return a.users.set(user, new)
}
