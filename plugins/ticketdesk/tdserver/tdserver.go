// Package tdserver is an in-process TicketDesk server: the small ticketing
// REST API that plugins/ticketdesk connects to (described in
// plugins/ticketdesk/README.md). Tests of any package can run it behind
// httptest.NewServer. It is safe for concurrent use.
package tdserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ticket is a TicketDesk ticket.
type Ticket struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Severity    int       `json:"severity"` // 1 low … 4 critical
	Status      string    `json:"status"`   // StatusOpen or StatusClosed
	CloseReason string    `json:"close_reason"`
	CloseNotes  string    `json:"close_notes"`
	Created     string    `json:"created"` // RFC 3339, UTC, seconds
	Updated     string    `json:"updated"`
	Assignee    string    `json:"assignee"`
	Comments    []Comment `json:"comments"`
}

// Comment is a comment on a ticket.
type Comment struct {
	ID      string   `json:"id"`
	Body    string   `json:"body"`
	Author  string   `json:"author"`
	Tags    []string `json:"tags"`
	Created string   `json:"created"`
}

// Ticket statuses.
const (
	StatusOpen   = "open"
	StatusClosed = "closed"
)

// Limits of the list endpoint.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Server is a TicketDesk server holding tickets in memory.
type Server struct {
	mu          sync.Mutex
	apiKey      string
	now         func() time.Time
	rateLimited bool
	tickets     []*Ticket // in creation order
	nextTicket  int
	nextComment int
	requests    int
}

// New returns a server that accepts apiKey in the X-API-Key header.
func New(apiKey string) *Server {
	return &Server{apiKey: apiKey, now: time.Now, nextTicket: 1, nextComment: 1}
}

// SetClock sets the clock that stamps created and updated times.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetRateLimited makes every API request fail with 429 while on.
func (s *Server) SetRateLimited(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimited = on
}

// Requests returns the number of API requests served, rejected ones
// included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Server) stamp() string { return s.now().UTC().Truncate(time.Second).Format(time.RFC3339) }

// CreateTicket adds a ticket: ID, Created, Updated, Status (when empty) and
// comment ids are filled in. It returns the stored ticket.
func (s *Server) CreateTicket(t Ticket) Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.create(t)
}

func (s *Server) create(t Ticket) Ticket {
	now := s.stamp()
	t.ID = "TD-" + strconv.Itoa(s.nextTicket)
	s.nextTicket++
	t.Created, t.Updated = now, now
	if t.Status == "" {
		t.Status = StatusOpen
	}
	if t.Severity == 0 {
		t.Severity = 1
	}
	for i := range t.Comments {
		t.Comments[i] = s.comment(t.Comments[i], now)
	}
	if t.Comments == nil {
		t.Comments = []Comment{}
	}
	s.tickets = append(s.tickets, &t)
	return clone(&t)
}

func (s *Server) comment(c Comment, now string) Comment {
	c.ID = "C-" + strconv.Itoa(s.nextComment)
	s.nextComment++
	c.Created = now
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return c
}

// Ticket returns a copy of a ticket.
func (s *Server) Ticket(id string) (Ticket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.find(id)
	if t == nil {
		return Ticket{}, false
	}
	return clone(t), true
}

// AddComment adds a comment as the API does, touching the ticket.
func (s *Server) AddComment(id string, c Comment) (Comment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.find(id)
	if t == nil {
		return Comment{}, fmt.Errorf("ticket %s not found", id)
	}
	now := s.stamp()
	c = s.comment(c, now)
	t.Comments = append(t.Comments, c)
	t.Updated = now
	return c, nil
}

// Close closes a ticket as the API does.
func (s *Server) Close(id, reason, notes string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.find(id)
	if t == nil {
		return fmt.Errorf("ticket %s not found", id)
	}
	t.Status, t.CloseReason, t.CloseNotes, t.Updated = StatusClosed, reason, notes, s.stamp()
	return nil
}

// Reopen sets a closed ticket back to open, as PATCH {"status":"open"}.
func (s *Server) Reopen(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.find(id)
	if t == nil {
		return fmt.Errorf("ticket %s not found", id)
	}
	t.Status, t.Updated = StatusOpen, s.stamp()
	return nil
}

func (s *Server) find(id string) *Ticket {
	for _, t := range s.tickets {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func clone(t *Ticket) Ticket {
	c := *t
	c.Comments = slices.Clone(t.Comments)
	for i := range c.Comments {
		c.Comments[i].Tags = slices.Clone(c.Comments[i].Tags)
	}
	return c
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, apiError{Error: fmt.Sprintf(format, args...)})
}

// ServeHTTP serves the TicketDesk API under /api/v1.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if r.Header.Get("X-API-Key") != s.apiKey || s.apiKey == "" {
		fail(w, http.StatusUnauthorized, "invalid API key")
		return
	}
	if s.rateLimited {
		w.Header().Set("Retry-After", "30")
		fail(w, http.StatusTooManyRequests, "rate limit exceeded, retry later")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v1/")
	if !ok {
		fail(w, http.StatusNotFound, "no route %s", r.URL.Path)
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "ping" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	case len(parts) == 1 && parts[0] == "tickets" && r.Method == http.MethodGet:
		s.list(w, r)
	case len(parts) == 1 && parts[0] == "tickets" && r.Method == http.MethodPost:
		var t Ticket
		if !decode(w, r, &t) {
			return
		}
		if t.Title == "" {
			fail(w, http.StatusBadRequest, "title is required")
			return
		}
		t.Status, t.CloseReason, t.CloseNotes = "", "", ""
		writeJSON(w, http.StatusCreated, s.create(t))
	case len(parts) >= 2 && parts[0] == "tickets":
		t := s.find(parts[1])
		if t == nil {
			fail(w, http.StatusNotFound, "ticket %s not found", parts[1])
			return
		}
		s.ticket(w, r, t, parts[2:])
	default:
		fail(w, http.StatusNotFound, "no route %s %s", r.Method, r.URL.Path)
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "bad JSON body: %v", err)
		return false
	}
	return true
}

// list serves GET /tickets: created_after or updated_after (inclusive,
// RFC 3339) sorted ascending by that time then id, at most limit.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			fail(w, http.StatusBadRequest, "limit: want 1..%d, got %q", MaxLimit, v)
			return
		}
		limit = n
	}
	key := func(t *Ticket) string { return t.Created }
	var after time.Time
	for _, f := range []string{"created_after", "updated_after"} {
		v := q.Get(f)
		if v == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339, v)
		if err != nil {
			fail(w, http.StatusBadRequest, "%s: want RFC 3339, got %q", f, v)
			return
		}
		after = ts
		if f == "updated_after" {
			key = func(t *Ticket) string { return t.Updated }
		}
	}
	var out []Ticket
	for _, t := range s.tickets {
		ts, _ := time.Parse(time.RFC3339, key(t)) // we wrote it
		if !ts.Before(after) {
			out = append(out, clone(t))
		}
	}
	slices.SortStableFunc(out, func(a, b Ticket) int {
		ta, _ := time.Parse(time.RFC3339, key(&a))
		tb, _ := time.Parse(time.RFC3339, key(&b))
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return idNum(a.ID) - idNum(b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	if out == nil {
		out = []Ticket{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tickets": out})
}

func idNum(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "TD-"))
	return n
}

// patch is the body of PATCH /tickets/{id}; absent fields stay unchanged.
type patch struct {
	Title       *string `json:"title"`
	Description *string `json:"description"`
	Severity    *int    `json:"severity"`
	Assignee    *string `json:"assignee"`
	Status      *string `json:"status"`
}

type closeBody struct {
	CloseReason string `json:"close_reason"`
	CloseNotes  string `json:"close_notes"`
}

func (s *Server) ticket(w http.ResponseWriter, r *http.Request, t *Ticket, rest []string) {
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, clone(t))
	case len(rest) == 0 && r.Method == http.MethodPatch:
		var p patch
		if !decode(w, r, &p) {
			return
		}
		if p.Severity != nil && (*p.Severity < 1 || *p.Severity > 4) {
			fail(w, http.StatusBadRequest, "severity: want 1..4, got %d", *p.Severity)
			return
		}
		if p.Status != nil && *p.Status != StatusOpen && *p.Status != StatusClosed {
			fail(w, http.StatusBadRequest, "status: want open or closed, got %q", *p.Status)
			return
		}
		set(&t.Title, p.Title)
		set(&t.Description, p.Description)
		set(&t.Assignee, p.Assignee)
		set(&t.Status, p.Status)
		if p.Severity != nil {
			t.Severity = *p.Severity
		}
		t.Updated = s.stamp()
		writeJSON(w, http.StatusOK, clone(t))
	case len(rest) == 1 && rest[0] == "comments" && r.Method == http.MethodPost:
		var c Comment
		if !decode(w, r, &c) {
			return
		}
		if c.Body == "" {
			fail(w, http.StatusBadRequest, "body is required")
			return
		}
		now := s.stamp()
		c = s.comment(c, now)
		t.Comments = append(t.Comments, c)
		t.Updated = now
		writeJSON(w, http.StatusCreated, c)
	case len(rest) == 1 && rest[0] == "close" && r.Method == http.MethodPost:
		var c closeBody
		if !decode(w, r, &c) {
			return
		}
		t.Status, t.CloseReason, t.CloseNotes, t.Updated = StatusClosed, c.CloseReason, c.CloseNotes, s.stamp()
		writeJSON(w, http.StatusOK, clone(t))
	default:
		fail(w, http.StatusNotFound, "no route %s %s", r.Method, r.URL.Path)
	}
}

func set(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}
