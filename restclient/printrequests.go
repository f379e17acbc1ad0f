package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// printRequests is an http.RoundTripper (installed with rest.Config.Wrap)
// that prints each request client-go sends, read from the *http.Request
// itself rather than rebuilt by hand, and the same request as a curl
// command through `kubectl proxy`, which listens on 127.0.0.1:8001 and adds
// the credentials itself. Bodies are printed inline, so every curl line
// runs as printed.
type printRequests struct {
	next http.RoundTripper
	out  io.Writer
}

func (p printRequests) RoundTrip(req *http.Request) (*http.Response, error) {
	fmt.Fprintf(p.out, "    %s %s\n", req.Method, req.URL)
	curl := []string{"curl"}
	if req.Method != http.MethodGet {
		curl = append(curl, "-X", req.Method)
	}
	if accept := req.Header.Get("Accept"); strings.Contains(accept, "protobuf") {
		curl = append(curl, "-H", shellQuote("Accept: "+accept))
	}
	// GetBody returns a fresh copy of the body; req.Body stays unread for
	// the real request.
	note := ""
	if req.GetBody != nil {
		contentType := req.Header.Get("Content-Type")
		curl = append(curl, "-H", shellQuote("Content-Type: "+contentType))
		if body, err := req.GetBody(); err == nil {
			b, _ := io.ReadAll(body)
			body.Close()
			if strings.Contains(contentType, "json") {
				// The JSON encoder ends the body with a newline; curl needs none.
				curl = append(curl, "-d", shellQuote(strings.TrimSpace(string(b))))
			} else {
				curl = append(curl, "--data-binary", "@-")
				note = fmt.Sprintf("  # with the %d-byte body on stdin", len(b))
			}
		}
	}
	u := *req.URL
	u.Scheme, u.Host = "http", "127.0.0.1:8001"
	fmt.Fprintf(p.out, "    %s %s%s\n", strings.Join(curl, " "), shellQuote(u.String()), note)
	return p.next.RoundTrip(req)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
