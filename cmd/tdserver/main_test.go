package main

import (
	"strconv"
	"testing"

	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

func TestSeedTickets(t *testing.T) {
	tests := []struct {
		n int
	}{{0}, {1}, {3}, {7}}
	for _, tt := range tests {
		srv := tdserver.New("k")
		seedTickets(srv, tt.n)
		for i := 1; i <= tt.n; i++ {
			id := "TD-" + strconv.Itoa(i)
			got, ok := srv.Ticket(id)
			if !ok {
				t.Fatalf("n=%d: %s missing", tt.n, id)
			}
			if got.Severity < 1 || got.Severity > 4 {
				t.Errorf("%s: severity %d", id, got.Severity)
			}
			if wantClosed := i%3 == 0; (got.Status == tdserver.StatusClosed) != wantClosed {
				t.Errorf("%s: status %s", id, got.Status)
			}
		}
		if _, ok := srv.Ticket("TD-" + strconv.Itoa(tt.n+1)); ok {
			t.Errorf("n=%d: extra ticket", tt.n)
		}
	}
}
