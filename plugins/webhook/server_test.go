package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
)

// alertmanager reads a webhook payload (Alertmanager webhook format v4)
// from testdata.
func alertmanager(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hookServer is the real connhost server on loopback with the built webhook
// plugin installed.
type hookServer struct {
	*testenv.Server
	t *testing.T
}

func newHookServer(t *testing.T) *hookServer {
	t.Helper()
	s := &hookServer{Server: testenv.NewServer(t, testenv.ServerOptions{}), t: t}
	s.Install(testenv.Plugin(t, "webhook"))
	return s
}

func (s *hookServer) instance(name string, params map[string]any) {
	s.t.Helper()
	s.CreateInstance(name, "webhook", params, store.Settings{ExternalHTTP: true, LongRunning: true})
}

// post sends body to the instance with basic auth and returns the answer.
func (s *hookServer) post(instance string, body []byte) (int, map[string]any) {
	s.t.Helper()
	r := s.Do(http.MethodPost, api.InstanceHTTPPrefix+"/"+instance, body, http.Header{
		"Authorization": {"Basic YWxlcnRtYW5hZ2VyOnMzY3JldA=="}, // alertmanager:s3cret
		"Content-Type":  {"application/json"},
		"User-Agent":    {"Alertmanager/0.25.0"},
	})
	var out map[string]any
	_ = json.Unmarshal(r.Body, &out)
	return r.Status, out
}

func (s *hookServer) incidents(instance string) []store.Incident {
	s.t.Helper()
	incs, _, err := s.Store.SearchIncidents(context.Background(), store.IncidentQuery{Instance: instance, Limit: 1000})
	if err != nil {
		s.t.Fatal(err)
	}
	return incs
}

func (s *hookServer) entries(incident string) []store.Entry {
	s.t.Helper()
	es, _, err := s.Store.ListEntries(context.Background(), incident, store.EntryQuery{Limit: 1000})
	if err != nil {
		s.t.Fatal(err)
	}
	return es
}

var amParams = map[string]any{
	"credentials_identifier": "alertmanager", "credentials_password": "s3cret", "incident_type": "Prometheus Alert",
	ParamNameTemplate: "{{.commonLabels.alertname}} on {{.commonLabels.instance}} ({{.status}})",
	ParamDedupFields:  "groupKey, status",
}

// TestAlertmanagerThroughServer posts Alertmanager's firing, repeat,
// resolved and grouped notifications to the built plugin through the real
// server and checks each incident's name and rawJSON, and that a repeat
// lands on the open incident instead of creating another.
func TestAlertmanagerThroughServer(t *testing.T) {
	s := newHookServer(t)
	s.instance("am", amParams)
	s.instance("am-plain", map[string]any{"credentials_identifier": "alertmanager", "credentials_password": "s3cret"})

	steps := []struct {
		name, instance, payload string
		wantName                string
		wantNew                 bool
		sameAs                  string // step whose incident a repeat lands on
	}{
		{"firing", "am", "firing", "HostDiskFull on db1.example.com:9100 (firing)", true, ""},
		{"repeat while open", "am", "repeat", "HostDiskFull on db1.example.com:9100 (firing)", false, "firing"},
		{"resolved is another status", "am", "resolved", "HostDiskFull on db1.example.com:9100 (resolved)", true, ""},
		{"resolved again", "am", "resolved", "HostDiskFull on db1.example.com:9100 (resolved)", false, "resolved is another status"},
		// grouped has no commonLabels.instance: the template fails and the
		// default name is used.
		{"grouped, template field missing", "am", "grouped", DefaultName, true, ""},
		{"no dedup configured", "am-plain", "firing", DefaultName, true, ""},
		{"no dedup configured, repeat", "am-plain", "repeat", DefaultName, true, ""},
	}
	ids := map[string]string{}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			body := alertmanager(t, st.payload)
			before := len(s.incidents(st.instance))
			status, out := s.post(st.instance, body)
			if status != http.StatusOK {
				t.Fatalf("POST = %d %v", status, out)
			}
			id, _ := out["id"].(string)
			ids[st.name] = id
			incs := s.incidents(st.instance)
			if got := len(incs) - before; got != map[bool]int{true: 1, false: 0}[st.wantNew] {
				t.Fatalf("incidents created = %d, want new=%v", got, st.wantNew)
			}
			if !st.wantNew {
				if id != ids[st.sameAs] || out["deduplicated"] != true {
					t.Errorf("answer = %v, want incident %s deduplicated", out, ids[st.sameAs])
				}
				notes := 0
				for _, e := range s.entries(id) {
					if e.Type == 1 && len(e.Tags) == 1 && e.Tags[0] == "webhook-repeat" {
						notes++
					}
				}
				if notes == 0 {
					t.Errorf("incident %s has no note of the repeat", id)
				}
				return
			}
			inc, err := s.Store.GetIncident(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if inc.Name != st.wantName {
				t.Errorf("name = %q, want %q", inc.Name, st.wantName)
			}
			if st.instance == "am" && inc.Type != "Prometheus Alert" {
				t.Errorf("type = %q, want the incident_type param", inc.Type)
			}
			var raw, want map[string]any
			if err := json.Unmarshal([]byte(inc.RawJSON), &raw); err != nil {
				t.Fatal(err)
			}
			headers, _ := raw["headers"].(map[string]any)
			if headers["User-Agent"] != "Alertmanager/0.25.0" || headers["Authorization"] != nil {
				t.Errorf("rawJSON headers = %v, want the request's without Authorization", headers)
			}
			delete(raw, "headers")
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(raw, want) {
				t.Errorf("rawJSON is not the whole body:\n got %v\nwant %v", raw, want)
			}
		})
	}

	// A deleted incident no longer absorbs repeats.
	if r := s.Call(http.MethodDelete, api.Prefix+"/incidents/"+ids["firing"], nil); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		t.Fatalf("delete incident: %s", r)
	}
	status, out := s.post("am", alertmanager(t, "repeat"))
	if status != http.StatusOK || out["deduplicated"] == true || out["id"] == ids["firing"] {
		t.Errorf("repeat after the incident was deleted: %d %v, want a new incident", status, out)
	}
}
