package tdserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAPI(t *testing.T) {
	s := New("k")
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s.SetClock(func() time.Time { return t0 })
	s.CreateTicket(Ticket{Title: "a"})
	s.CreateTicket(Ticket{Title: "b"})
	srv := httptest.NewServer(s)
	defer srv.Close()
	tests := []struct {
		method, path, key, body string
		status                  int
		want                    string
	}{
		{"GET", "/api/v1/ping", "k", "", 200, `"ok":true`},
		{"GET", "/api/v1/ping", "bad", "", 401, "invalid API key"},
		{"GET", "/api/v1/tickets?created_after=2025-01-02T03:04:05Z&limit=1", "k", "", 200, `"id":"TD-1"`},
		{"GET", "/api/v1/tickets?created_after=2025-01-02T03:04:06Z", "k", "", 200, `{"tickets":[]}`},
		{"GET", "/api/v1/tickets?limit=0", "k", "", 400, "limit"},
		{"GET", "/api/v1/tickets/TD-9", "k", "", 404, "not found"},
		{"PATCH", "/api/v1/tickets/TD-1", "k", `{"severity":5}`, 400, "severity"},
		{"PATCH", "/api/v1/tickets/TD-1", "k", `{"bogus":1}`, 400, "unknown field"},
		{"POST", "/api/v1/tickets/TD-1/comments", "k", `{"body":"hi","tags":["x"]}`, 201, `"id":"C-1"`},
		{"POST", "/api/v1/tickets/TD-1/close", "k", `{"close_reason":"done"}`, 200, `"status":"closed"`},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("X-API-Key", tc.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s = %d %s, want %d containing %q", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.want)
		}
	}
	s.SetRateLimited(true)
	resp, _ := http.Get(srv.URL + "/api/v1/ping")
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no key while rate limited: %d, want 401 first", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/ping", nil)
	req.Header.Set("X-API-Key", "k")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("rate limited: %d", resp.StatusCode)
	}
}
