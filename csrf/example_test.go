package csrf_test

import (
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"

	"github.com/seshgo/sesh"
	"github.com/seshgo/sesh/csrf"
	"github.com/seshgo/sesh/memstore"
	"github.com/seshgo/sesh/seal"
)

// exampleManager builds a manager on a fresh memory store. Real
// applications read their keys from SESH_KEYS with seal.ParseRing.
func exampleManager() *sesh.Manager {
	k, err := seal.GenerateKey(1)
	if err != nil {
		panic(err)
	}
	keys, err := seal.NewRing(k)
	if err != nil {
		panic(err)
	}
	m, err := sesh.New(memstore.New(), sesh.Config{Keys: keys})
	if err != nil {
		panic(err)
	}
	return m
}

var transferPage = template.Must(template.New("transfer").Parse(
	`<form method="post" action="/transfer">{{.CSRF}}<input name="amount"><button>Send</button></form>`))

// A form protected by the session-bound token. The page embeds a fresh
// token; the submission carries it back in the csrf_token field.
func Example() {
	m := exampleManager()
	p, err := csrf.New(csrf.Config{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /transfer", func(w http.ResponseWriter, r *http.Request) {
		transferPage.Execute(w, map[string]any{"CSRF": p.TemplateField(r)})
	})
	mux.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "sent %s", r.PostFormValue("amount"))
	})
	h := m.Handler(p.Handler(mux)) // csrf inside the session middleware

	// The browser loads the form and keeps the session cookie.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "https://bank.example/transfer", nil))
	cookies := rec.Result().Cookies()
	token := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())[1]

	submit := func(body string, hdr ...string) {
		r := httptest.NewRequest("POST", "https://bank.example/transfer", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		for _, c := range cookies {
			r.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		b, _ := io.ReadAll(rec.Body)
		fmt.Printf("%d %s\n", rec.Code, strings.TrimSpace(string(b)))
	}
	// The user submits the form.
	submit("amount=10&csrf_token="+url.QueryEscape(token), "Sec-Fetch-Site", "same-origin")
	// A forged form on another site cannot know the token...
	submit("amount=1000")
	// ...and the browser tells us where it comes from anyway.
	submit("amount=1000&csrf_token="+url.QueryEscape(token), "Sec-Fetch-Site", "cross-site")
	// Output:
	// 200 sent 10
	// 403 Forbidden
	// 403 Forbidden
}

// Scripts send the token in the X-CSRF-Token header; the page gives it to
// them in a <meta> element. Never put a token in a URL.
func ExampleToken() {
	m := exampleManager()
	p, err := csrf.New(csrf.Config{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /app", func(w http.ResponseWriter, r *http.Request) {
		tok, err := csrf.Token(r)
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `<meta name="csrf-token" content="%s">
<script>
fetch("/api/items", {method: "POST",
  headers: {"Content-Type": "application/json",
    "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content},
  body: JSON.stringify({name: "widget"})});
</script>`, template.HTMLEscapeString(tok))
	})
	mux.HandleFunc("POST /api/items", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "created")
	})
	h := m.Handler(p.Handler(mux))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "https://app.example/app", nil))
	token := regexp.MustCompile(`content="([^"]+)"`).FindStringSubmatch(rec.Body.String())[1]

	// What the browser's fetch() sends.
	r := httptest.NewRequest("POST", "https://app.example/api/items", strings.NewReader(`{"name":"widget"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("X-CSRF-Token", token)
	for _, c := range rec.Result().Cookies() {
		r.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	fmt.Println(rec.Code, rec.Body.String())
	// Output: 200 created
}
