package main

// The HTML pages. Elements that browser tests can rely on:
//
// Every page:
//
//	body[data-page]        home, login, cart, devices, password
//	#nav                   navigation: #nav-home, #nav-cart, and
//	                       #nav-login (signed out) or #nav-devices,
//	                       #nav-password, #nav-user (the user name, with
//	                       #nav-remembered when restored by remember-me)
//	#logout-form           sign-out form (signed in), button #logout-button
//	#title                 the page's h1
//	#flash                 flash messages, each p.flash.flash-KIND
//	                       (KIND: info, success, error); shown once
//	input[name=csrf_token] in every form
//
// Home (/):
//
//	#signed-out            after signing out
//	#greeting              "Hello, guest!" or "Hello, NAME!"
//	#visits                visits in this session
//	#flash-form            #flash-message, #flash-submit
//	#reset-form            #reset-button: ends the session
//	#home-cart-count       items in the cart, when any
//
// Sign in (/login):
//
//	#login-form            #login-user, #login-password, #login-remember
//	                       (checkbox), #login-submit
//	#login-current         when already signed in
//
// Cart (/cart):
//
//	#cart-empty            when the cart is empty
//	#cart-items            tr.cart-item[data-item=NAME] with td.cart-name,
//	                       td.cart-qty and form.cart-remove (#remove-NAME)
//	#cart-count            total quantity
//	#cart-clear-form       #cart-clear
//	#products              li.product[data-item=NAME] with form.cart-add
//	                       (#add-NAME); NAME is one of apple, bread,
//	                       cheese, coffee, tea
//
// Devices (/devices; signed in, else redirected to /login):
//
//	#devices               tr.device[data-handle=HANDLE], tr.current for
//	                       this device (with span.device-current);
//	                       td.device-agent, .device-created,
//	                       .device-last-seen, .device-ip;
//	                       span.device-remembered; form.device-revoke with
//	                       button.device-revoke-button on the others
//	#revoke-others-form    #revoke-others-button
//	#devices-unsupported   instead, with a store without a user index
//
// Session ended (a page sent when a form was posted with a session that
// had just been ended elsewhere; see pageErrorHandler):
//
//	#session-ended, #session-ended-continue
//
// Password (/password; signed in, else redirected to /login):
//
//	#password-form         #password-old, #password-new,
//	                       #password-confirm, #password-submit

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seshgo/sesh"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

var templates = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"fmtTime": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	}
	out := make(map[string]*template.Template)
	for _, name := range []string{"home", "login", "cart", "devices", "password"} {
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// products can be put in the cart.
var products = []string{"apple", "bread", "cheese", "coffee", "tea"}

const (
	cartBag = "cart"
	maxQty  = 99
)

// pageData is what the templates get.
type pageData struct {
	Title      string
	Nav        string
	Store      string
	User       string
	Remembered bool
	Flash      []sesh.Message
	CSRF       template.HTML

	Visits    int
	SignedOut bool

	Cart      []cartLine
	CartCount int
	Products  []string

	Devices []sesh.Device
	NoIndex bool
}

type cartLine struct {
	Item string
	Qty  int
}

func (a *app) routePages(mux *http.ServeMux) {
	form := func(h http.HandlerFunc) http.Handler { return a.csrf.Handler(h) }
	// Read-modify-write routes: Exclusive must come before the CSRF check,
	// which reads the session.
	exclusive := func(h http.HandlerFunc) http.Handler { return a.exclusive(a.csrf.Handler(h)) }

	mux.Handle("GET /{$}", exclusive(a.home))
	mux.Handle("POST /flash", form(a.addFlash))
	mux.Handle("POST /reset", form(a.reset))
	mux.Handle("GET /login", form(a.loginPage))
	mux.Handle("POST /login", form(a.login))
	mux.Handle("POST /logout", form(a.logout))
	mux.Handle("GET /cart", form(a.cartPage))
	mux.Handle("POST /cart/add", exclusive(a.cartAdd))
	mux.Handle("POST /cart/remove", form(a.cartRemove))
	mux.Handle("POST /cart/clear", form(a.cartClear))
	mux.Handle("GET /devices", form(a.devicesPage))
	mux.Handle("POST /devices/revoke", form(a.revokeDevicePage))
	mux.Handle("POST /devices/revoke-others", form(a.revokeOthersPage))
	mux.Handle("GET /password", form(a.passwordPage))
	mux.Handle("POST /password", form(a.passwordChange))
	mux.HandleFunc("GET /session-ended", a.sessionEnded)
	mux.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(styleCSS)
	})
}

// render writes a page. It pops the flash messages and puts a CSRF token
// in the forms, so it runs before the response starts.
func (a *app) render(w http.ResponseWriter, r *http.Request, name string, d *pageData) {
	s := session(r)
	d.Nav, d.Store = name, a.storeName
	d.User, d.Remembered = s.User(), s.Remembered()
	d.CSRF = a.csrf.TemplateField(r)
	d.Flash = s.Flash().Pop()
	var buf bytes.Buffer
	if err := templates[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		a.logger.ErrorContext(r.Context(), "seshdemo: rendering a page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page carries a CSRF token of this session: keep it out of caches.
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	w.Write(buf.Bytes())
}

// redirect sends the browser to path after a form post, with a flash
// message if msg is not empty.
func redirect(w http.ResponseWriter, r *http.Request, path, kind, msg string) {
	if msg != "" {
		session(r).Flash().Add(kind, msg)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// pageUser returns the signed-in user, or sends the browser to sign in.
func pageUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	if u := session(r).User(); u != "" {
		return u, true
	}
	redirect(w, r, "/login", "error", "Please sign in first.")
	return "", false
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	s := session(r)
	visits, _ := sesh.Get[int](s, "visits")
	visits++
	if err := s.Set("visits", visits); err != nil {
		http.Error(w, "cannot count this visit", http.StatusInternalServerError)
		return
	}
	_, count := cartLines(s)
	a.render(w, r, "home", &pageData{Title: "Welcome", Visits: visits, CartCount: count, SignedOut: r.URL.Query().Has("signed_out")})
}

func (a *app) addFlash(w http.ResponseWriter, r *http.Request) {
	msg := r.PostFormValue("message")
	if n := utf8.RuneCountInString(msg); n == 0 || n > maxMessageLen {
		http.Error(w, "a message is 1 to 500 characters", http.StatusBadRequest)
		return
	}
	redirect(w, r, "/", "info", msg)
}

func (a *app) reset(w http.ResponseWriter, r *http.Request) {
	session(r).Destroy()
	redirect(w, r, "/", "info", "Your session was ended; counting starts again.")
}

func (a *app) loginPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, "login", &pageData{Title: "Sign in"})
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	user := r.PostFormValue("user")
	if !a.users.check(user, r.PostFormValue("password")) {
		redirect(w, r, "/login", "error", "Wrong user name or password.")
		return
	}
	s := session(r)
	s.Login(user)
	if r.PostFormValue("remember") != "" {
		s.Remember()
	}
	redirect(w, r, "/", "success", "Welcome, "+user+".")
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	// No flash message: Logout clears the site's cookies
	// (Clear-Site-Data), a new session's with them.
	session(r).Logout()
	http.Redirect(w, r, "/?signed_out", http.StatusSeeOther)
}

// cartLines returns the cart's lines and total quantity.
func cartLines(s *sesh.Session) ([]cartLine, int) {
	bag := s.Bag(cartBag)
	var lines []cartLine
	total := 0
	for _, item := range bag.Keys() {
		if q, ok := sesh.Get[int](bag, item); ok && q > 0 {
			lines = append(lines, cartLine{item, q})
			total += q
		}
	}
	return lines, total
}

func (a *app) cartPage(w http.ResponseWriter, r *http.Request) {
	lines, total := cartLines(session(r))
	a.render(w, r, "cart", &pageData{Title: "Cart", Cart: lines, CartCount: total, Products: products})
}

func cartItem(w http.ResponseWriter, r *http.Request) (string, bool) {
	item := r.PostFormValue("item")
	if !slices.Contains(products, item) {
		http.Error(w, "no such product", http.StatusBadRequest)
		return "", false
	}
	return item, true
}

func (a *app) cartAdd(w http.ResponseWriter, r *http.Request) {
	item, ok := cartItem(w, r)
	if !ok {
		return
	}
	bag := session(r).Bag(cartBag)
	q, _ := sesh.Get[int](bag, item)
	if q >= maxQty {
		redirect(w, r, "/cart", "error", "That is enough "+item+".")
		return
	}
	if err := bag.Set(item, q+1); err != nil {
		http.Error(w, "cannot change the cart", http.StatusInternalServerError)
		return
	}
	redirect(w, r, "/cart", "success", "Added "+item+" to your cart.")
}

func (a *app) cartRemove(w http.ResponseWriter, r *http.Request) {
	item, ok := cartItem(w, r)
	if !ok {
		return
	}
	session(r).Bag(cartBag).Delete(item)
	redirect(w, r, "/cart", "info", "Removed "+item+" from your cart.")
}

func (a *app) cartClear(w http.ResponseWriter, r *http.Request) {
	session(r).Bag(cartBag).Clear()
	redirect(w, r, "/cart", "info", "Your cart is empty.")
}

func (a *app) devicesPage(w http.ResponseWriter, r *http.Request) {
	user, ok := pageUser(w, r)
	if !ok {
		return
	}
	d := &pageData{Title: "Your devices"}
	devs, err := a.m.Sessions(r.Context(), user)
	switch {
	case errors.Is(err, sesh.ErrNotSupported):
		d.NoIndex = true
	case err != nil:
		a.logger.ErrorContext(r.Context(), "seshdemo: listing devices", "error", err)
		errorHandler(w, r, err)
		return
	}
	d.Devices = devs
	a.render(w, r, "devices", d)
}

func (a *app) revokeDevicePage(w http.ResponseWriter, r *http.Request) {
	user, ok := pageUser(w, r)
	if !ok {
		return
	}
	switch err := a.m.Revoke(r.Context(), user, r.PostFormValue("handle")); {
	case err == nil:
		redirect(w, r, "/devices", "success", "That device is signed out.")
	case errors.Is(err, sesh.ErrNoSuchSession):
		redirect(w, r, "/devices", "error", "That device is not signed in.")
	case errors.Is(err, sesh.ErrNotSupported):
		redirect(w, r, "/devices", "error", "This session store cannot sign devices out.")
	default:
		errorHandler(w, r, err)
	}
}

func (a *app) revokeOthersPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := pageUser(w, r); !ok {
		return
	}
	n, err := a.m.RevokeOthers(r.Context())
	switch {
	case err == nil && n == 1:
		redirect(w, r, "/devices", "success", "1 other device is signed out.")
	case err == nil:
		redirect(w, r, "/devices", "success", strconv.Itoa(n)+" other devices are signed out.")
	case errors.Is(err, sesh.ErrNotSupported):
		redirect(w, r, "/devices", "error", "This session store cannot sign devices out.")
	default:
		errorHandler(w, r, err)
	}
}

func (a *app) passwordPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := pageUser(w, r); !ok {
		return
	}
	a.render(w, r, "password", &pageData{Title: "Change your password"})
}

func (a *app) passwordChange(w http.ResponseWriter, r *http.Request) {
	user, ok := pageUser(w, r)
	if !ok {
		return
	}
	newPw := r.PostFormValue("new")
	if newPw != r.PostFormValue("confirm") {
		redirect(w, r, "/password", "error", "The new passwords differ.")
		return
	}
	switch err := a.changePassword(r.Context(), user, r.PostFormValue("old"), newPw); {
	case err == nil:
		redirect(w, r, "/", "success", "Your password is changed; your other devices are signed out.")
	case errors.Is(err, errWrongPassword):
		redirect(w, r, "/password", "error", "Wrong password.")
	case errors.Is(err, errBadPassword):
		redirect(w, r, "/password", "error", "A password must be 1 to 1024 characters.")
	default:
		errorHandler(w, r, err)
	}
}

// A session ID that was logged out or renewed stays known for a few
// minutes as a tombstone, and a write with it fails with ErrSessionGone
// (409), so that a request in flight during a logout or a login can
// neither bring the session back nor replace the browser's new cookie. A
// page request that meets this (a tab loading while another signs in or
// out) is sent to /session-ended, which tells the browser to forget the
// cookie if it still holds the dead one, and sends it back where it was
// going. By then a browser that was given a new cookie sends that one,
// which is kept.

// pageErrorHandler answers a page whose session could not be loaded or
// saved.
func pageErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, sesh.ErrSessionGone) {
		sesh.DefaultErrorHandler(w, r, err)
		return
	}
	target := "/session-ended?next=" + url.QueryEscape(r.URL.RequestURI())
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusConflict)
	sessionEndedPage.Execute(w, target)
}

var sessionEndedPage = template.Must(template.New("ended").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Session ended · sesh demo</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><main><h1 id="title">Your session has ended</h1>
<p id="session-ended">It was ended in another tab or on another device while this was sent; nothing was saved.</p>
<p><a id="session-ended-continue" href="{{.}}">Continue</a></p></main></body></html>
`))

// sessionEnded forgets a dead session cookie and goes on to next.
func (a *app) sessionEnded(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = "/"
	}
	if _, err := r.Cookie(sessionCookie); err == nil && session(r).IsNew() && session(r).Err() == nil {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// The cookies' names: the demo serves plain HTTP, with the default names.
const (
	sessionCookie  = sesh.DefaultInsecureName
	rememberCookie = sessionCookie + "-remember"
)

// localPath reports whether p is a path on this site, safe to redirect to.
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}
