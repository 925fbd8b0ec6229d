// Command tdserver serves the in-process TicketDesk test server
// (plugins/ticketdesk/tdserver) on a local address, seeded with a few
// tickets, so the ticketdesk plugin can be run against it by hand or by
// `make run`. It is a development aid, not part of the product.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "listen address")
	apiKey := flag.String("api-key", "demo-key", "API key clients must send in X-API-Key")
	seed := flag.Int("seed", 3, "number of tickets to create at start")
	flag.Parse()
	if err := serve(*listen, *apiKey, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "tdserver:", err)
		os.Exit(1)
	}
}

func serve(listen, apiKey string, seed int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := tdserver.New(apiKey)
	seedTickets(srv, seed)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(shutdown)
	}()
	fmt.Fprintf(os.Stderr, "tdserver: serving %d tickets on http://%s\n", seed, ln.Addr())
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// seedTickets creates n tickets with varied severities, one closed and one
// with a comment, so fetch and mirroring have something to show.
func seedTickets(srv *tdserver.Server, n int) {
	for i := 1; i <= n; i++ {
		t := tdserver.Ticket{
			Title:       fmt.Sprintf("Suspicious login #%d", i),
			Description: fmt.Sprintf("Login from an unusual location (demo ticket %d).", i),
			Severity:    1 + (i-1)%4,
			Assignee:    "analyst",
		}
		if i%2 == 0 {
			t.Comments = []tdserver.Comment{{Body: "Looking into it.", Author: "analyst"}}
		}
		if i%3 == 0 {
			t.Status, t.CloseReason, t.CloseNotes = tdserver.StatusClosed, "Resolved", "False positive."
		}
		srv.CreateTicket(t)
	}
}
