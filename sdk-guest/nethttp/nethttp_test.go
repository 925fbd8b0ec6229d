package nethttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/nethttp"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

var ctx = context.Background()

func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Header.Get("X-Token"))
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
	}))
	defer srv.Close()
	c := sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"get": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.String("url"), strings.NewReader("payload"))
			req.Header.Set("X-Token", "t")
			resp, err := nethttp.Client(h).Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Header.Get("X-Seen"), b), nil
		},
	}}
	h := sdktest.New(c, nil)
	res, err := h.Command(ctx, "get", map[string]string{"url": srv.URL + "/p?q=1"})
	if err != nil || string(res) != `"418 t POST /p?q=1 payload"` {
		t.Fatalf("result = %s, %v", res, err)
	}
	h.Egress = []string{"example.com"}
	_, err = h.Command(ctx, "get", map[string]string{"url": srv.URL})
	if err == nil || !strings.Contains(err.Error(), "denied") || !strings.Contains(err.Error(), "egress") {
		t.Fatalf("egress: err = %v, want a denied error", err)
	}
}

func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		h := nethttp.HostFrom(r.Context())
		body, _ := io.ReadAll(r.Body)
		ids, err := h.CreateIncidents(r.Context(), abi.CreateIncidentsRequest{Incidents: []abi.Incident{{Name: string(body)}}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, ids[0], " ", r.URL.Query().Get("src"))
	})
	h := sdktest.New(sdk.Connector{HTTP: nethttp.Handler(mux)}, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantBody           string
	}{
		{"routed", http.MethodPost, "/hook?src=siem", http.StatusCreated, "incident-1 siem"},
		{"unrouted", http.MethodGet, "/nope", http.StatusNotFound, "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader("alert"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || string(b) != tt.wantBody {
				t.Fatalf("response %d %q, want %d %q", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if inc := h.Incidents(); len(inc) != 1 || inc[0].Name != "alert" {
		t.Errorf("incidents %+v", inc)
	}
}
