package workload

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LostUpdateResult is the outcome of [LostUpdates].
type LostUpdateResult struct {
	Sent   int // increments sent
	OK     int // answered 200
	Failed int // answered otherwise, or not at all
	Final  int // the counter read back afterwards
	// Failures counts the failed requests by status ("503") or error.
	Failures map[string]int
	// Body is the body of one failed response, for diagnosis.
	Body string
}

// Lost returns how many increments that were answered 200 are missing
// from the final counter.
func (r LostUpdateResult) Lost() int { return r.OK - r.Final }

// jar is the browser's cookie jar for one site, reduced to what matters
// here: the newest value of each cookie wins.
type jar struct {
	mu sync.Mutex
	v  map[string]string
}

func (j *jar) header() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	parts := make([]string, 0, len(j.v))
	for k, v := range j.v {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

func (j *jar) update(resp *http.Response) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(j.v, c.Name)
		} else {
			j.v[c.Name] = c.Value
		}
	}
}

// LostUpdates measures lost updates over real HTTP: it creates a session
// with GET baseURL/new (no counter yet), sends n parallel GET
// baseURL+path requests on it, as a browser with n tabs would (each
// request carries the cookies the jar holds when it starts, and each
// response's Set-Cookie updates the jar), then reads the counter back with
// GET baseURL/read.
func LostUpdates(ctx context.Context, baseURL, path string, n int) (LostUpdateResult, error) {
	res := LostUpdateResult{Sent: n, Failures: map[string]int{}}
	tr := &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	j := &jar{v: map[string]string{}}
	get := func(p string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", baseURL+p, nil)
		if err != nil {
			return 0, "", err
		}
		if h := j.header(); h != "" {
			req.Header.Set("Cookie", h)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, "", err
		}
		if resp.StatusCode == http.StatusOK {
			j.update(resp)
		}
		return resp.StatusCode, string(b), nil
	}
	if code, _, err := get("/new"); err != nil || code != http.StatusOK {
		return res, fmt.Errorf("GET /new: status %d, %v", code, err)
	}
	// Open n connections first, so that the increments start together.
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { get("/read") })
	}
	wg.Wait()

	start := make(chan struct{})
	var mu sync.Mutex
	for range n {
		wg.Go(func() {
			<-start
			code, b, err := get(path)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.Failed++
				res.Failures[err.Error()]++
			case code != http.StatusOK:
				res.Failed++
				res.Failures[strconv.Itoa(code)]++
				res.Body = strings.TrimSpace(b)
			default:
				res.OK++
			}
		})
	}
	close(start)
	wg.Wait()

	code, body, err := get("/read")
	if err != nil || code != http.StatusOK {
		return res, fmt.Errorf("GET /read: status %d, %v", code, err)
	}
	res.Final, err = strconv.Atoi(strings.TrimSpace(body))
	if err != nil {
		return res, fmt.Errorf("GET /read: %q: %v", body, err)
	}
	return res, nil
}

// LostUpdateCase is one row of the lost-update comparison.
type LostUpdateCase struct {
	Pair        string
	Path        string // /incr (sesh: Exclusive) or /incr-plain
	MustNotLose bool   // sesh's Exclusive route must count every increment
}

// LostUpdateCases lists the rows: sesh with and without Exclusive on each
// store, and the peers' counters as their users write them.
func LostUpdateCases() []LostUpdateCase {
	return []LostUpdateCase{
		{SeshMem, "/incr", true},
		{SeshMem, "/incr-plain", false},
		{SCSMem, "/incr", false},
		{GorillaCookie, "/incr", false},
		{GorillaFS, "/incr", false},
		{SeshRedis, "/incr", true},
		{SeshRedis, "/incr-plain", false},
		{SCSRedis, "/incr", false},
	}
}
