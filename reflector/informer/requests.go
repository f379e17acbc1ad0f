package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
)

// requestLog records every HTTP request that clients built from a
// rest.Config send, with the bytes of each response body read so far. It
// is how the demo proves that the lister sends no request.
type requestLog struct {
	mu       sync.Mutex
	requests []*request
	notify   func(*request) // -watch: print each request as it starts
}

// request is one HTTP request and its response.
type request struct {
	method      string
	url         *url.URL
	status      atomic.Int32
	contentType atomic.Value // string
	bytes       atomic.Int64 // response body bytes read so far
}

// countRequests wraps config's transport: every client made from config
// afterwards sends its requests through the log.
func countRequests(config *rest.Config) *requestLog {
	l := &requestLog{}
	config.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			r := &request{method: req.Method, url: req.URL}
			l.mu.Lock()
			l.requests = append(l.requests, r)
			notify := l.notify
			l.mu.Unlock()
			if notify != nil {
				notify(r)
			}
			resp, err := next.RoundTrip(req)
			if err != nil {
				return nil, err
			}
			r.status.Store(int32(resp.StatusCode))
			r.contentType.Store(resp.Header.Get("Content-Type"))
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &r.bytes}
			return resp, nil
		})
	})
	return l
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// count is the number of requests so far.
func (l *requestLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.requests)
}

// since returns the requests after the first n.
func (l *requestLog) since(n int) []*request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.requests[n:])
}

// untilWatch returns the requests after the first n once one of them is a
// WATCH: the informer's requests to fill its cache, a WatchList alone or a
// LIST and the WATCH that follows it (started a moment after the sync). It
// waits at most 5 seconds, or until ctx ends, and then returns what it has.
func (l *requestLog) untilWatch(ctx context.Context, n int) []*request {
	var got []*request
	_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		got = l.since(n)
		return slices.ContainsFunc(got, func(r *request) bool { return r.url.Query().Get("watch") == "true" }), nil
	})
	return got
}

func (l *requestLog) onRequest(f func(*request)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notify = f
}

// String describes a request as LIST, WATCH or GET with the query
// parameters that say how an informer fills its cache; the label selector
// and the random watch timeouts are left out.
func (r *request) String() string {
	q := r.url.Query()
	verb := r.method
	switch {
	case r.method == http.MethodGet && q.Get("watch") == "true":
		verb = "WATCH"
	case r.method == http.MethodGet && (q.Has("limit") || q.Has("labelSelector")): // a collection
		verb = "LIST"
	}
	var params []string
	for _, k := range []string{"resourceVersion", "resourceVersionMatch", "sendInitialEvents", "allowWatchBookmarks", "limit"} {
		if q.Has(k) {
			params = append(params, k+"="+q.Get(k))
		}
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s %s", verb, r.url.Path, strings.Join(params, " ")))
}
