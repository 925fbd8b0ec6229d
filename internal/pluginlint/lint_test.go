package pluginlint

import (
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
)

// base is a manifest with no finding: every conventional param correct and
// every flag they need set.
func base() *abi.Manifest {
	return &abi.Manifest{
		Name: "demo", Display: "Demo", Version: "1.0.0", Description: "Demo.", ABIVersion: 1,
		Params: []abi.Param{
			{Name: "url", Display: "URL", Type: abi.ParamString, Required: true},
			{Name: "api_key", Display: "Key", Type: abi.ParamSecret},
			{Name: "first_fetch", Display: "First fetch", Type: abi.ParamString, Default: "3 days"},
			{Name: "max_fetch", Display: "Max", Type: abi.ParamNumber},
			{Name: "mirror_direction", Display: "Direction", Type: abi.ParamSelect, Options: []string{"None", "Incoming", "Outgoing", "Incoming And Outgoing"}},
			{Name: "close_incident", Display: "Close in", Type: abi.ParamBool},
			{Name: "close_out", Display: "Close out", Type: abi.ParamBool},
			{Name: "comment_tag", Display: "Comments", Type: abi.ParamString},
			{Name: "work_notes_tag", Display: "Notes", Type: abi.ParamString},
			{Name: "file_tag", Display: "Files", Type: abi.ParamString},
		},
		Commands: []abi.Command{{Name: "demo-get", Description: "Get.", Arguments: []abi.Argument{
			{Name: "id", Description: "Id.", Required: true},
			{Name: "format", Description: "Format.", Default: "json", Options: []string{"json", "text"}},
		}}},
		IsFetch: true, IsMappable: true, IsRemoteSyncIn: true, IsRemoteSyncOut: true,
		Egress: []string{"param:url"},
	}
}

func TestLint(t *testing.T) {
	type want struct {
		sev  Severity
		path string
		text string
	}
	tests := []struct {
		name   string
		change func(m *abi.Manifest)
		want   []want // exactly these findings
	}{
		{"clean", func(*abi.Manifest) {}, nil},
		{"mirror_direction wrong type", func(m *abi.Manifest) { m.Params[4].Type, m.Params[4].Options = abi.ParamString, nil },
			[]want{{Error, "params[4].type", "type string, want select"}}},
		{"mirror_direction wrong options", func(m *abi.Manifest) { m.Params[4].Options = []string{"None", "In", "Out", "Both"} },
			[]want{{Error, "params[4].options", `want ["None" "Incoming" "Outgoing" "Incoming And Outgoing"]`}}},
		{"mirror_direction options in another order", func(m *abi.Manifest) {
			m.Params[4].Options = []string{"Incoming And Outgoing", "None", "Outgoing", "Incoming"}
		}, nil},
		{"close_out as string", func(m *abi.Manifest) { m.Params[6].Type = abi.ParamString },
			[]want{{Error, "params[6].type", "want bool"}}},
		{"fetch params without isfetch", func(m *abi.Manifest) { m.IsFetch = false }, []want{
			{Error, "params[2].name", "first_fetch needs isfetch"},
			{Error, "params[3].name", "max_fetch needs isfetch"},
			{Warning, "isfetch", "mirroring is on but fetching is off"},
		}},
		{"mirroring params without mirroring", func(m *abi.Manifest) { m.IsRemoteSyncIn, m.IsRemoteSyncOut = false, false }, []want{
			{Error, "params[4].name", "mirror_direction needs isremotesyncin or isremotesyncout"},
			{Error, "params[5].name", "close_incident needs isremotesyncin"},
			{Error, "params[6].name", "close_out needs isremotesyncout"},
			{Error, "params[7].name", "comment_tag needs"},
			{Error, "params[8].name", "work_notes_tag needs"},
			{Error, "params[9].name", "file_tag needs"},
		}},
		{"close_out with incoming only", func(m *abi.Manifest) { m.IsRemoteSyncOut = false },
			[]want{{Error, "params[6].name", "close_out needs isremotesyncout"}}},
		{"isFetch without isfetch", func(m *abi.Manifest) {
			m.Params = append(m.Params, abi.Param{Name: "isFetch", Display: "Fetch", Type: abi.ParamBool})
			m.IsFetch = false
		}, []want{
			{Error, "params[2].name", "first_fetch needs isfetch"},
			{Error, "params[3].name", "max_fetch needs isfetch"},
			{Error, "params[10].name", "isFetch needs isfetch"},
			{Warning, "isfetch", "mirroring is on but fetching is off"},
		}},
		{"incidentFetchInterval wrong type without isfetch", func(m *abi.Manifest) {
			m.Params = []abi.Param{{Name: "incidentFetchInterval", Display: "Interval", Type: abi.ParamNumber}}
			m.IsFetch, m.IsRemoteSyncIn, m.IsRemoteSyncOut = false, false, false
		}, []want{
			{Error, "params[0].type", "type number, want interval"},
			{Error, "params[0].name", "needs isfetch"},
		}},
		{"near miss of a conventional name", func(m *abi.Manifest) { m.Params[5].Name = "closeIncident" },
			[]want{{Warning, "params[5].name", `"closeIncident" looks like XSOAR's conventional param "close_incident"`}}},
		{"undocumented", func(m *abi.Manifest) {
			m.Display, m.Description = "", ""
			m.Params[0].Display = ""
			m.Commands[0].Description = ""
			m.Commands[0].Arguments[0].Description = ""
		}, []want{
			{Warning, "display", "empty"},
			{Warning, "description", "empty"},
			{Warning, "params[0].display", "param url: empty"},
			{Warning, "commands[0].description", "command demo-get: empty"},
			{Warning, "commands[0].arguments[0].description", "argument id: empty"},
		}},
		{"secret with a default", func(m *abi.Manifest) { m.Params[1].Default = "hunter2" },
			[]want{{Warning, "params[1].default", "secret param api_key has a default"}}},
		{"argument default outside its options", func(m *abi.Manifest) { m.Commands[0].Arguments[1].Default = "xml" },
			[]want{{Error, "commands[0].arguments[1].default", `default "xml" is not one of its options`}}},
		{"required argument with a default", func(m *abi.Manifest) { m.Commands[0].Arguments[0].Default = "1" },
			[]want{{Warning, "commands[0].arguments[0].required", "required with a default"}}},
		{"duplicate argument", func(m *abi.Manifest) { m.Commands[0].Arguments[1].Name = "id" },
			[]want{{Error, "commands[0].arguments[1].name", `duplicate argument "id"`}}},
		{"reserved command without its flag", func(m *abi.Manifest) {
			m.IsMappable = false
			m.Commands = append(m.Commands, abi.Command{Name: "get-mapping-fields", Description: "Fields."})
		}, []want{{Error, "commands[1].name", "get-mapping-fields is reserved: the host calls it only when the manifest sets ismappable"}}},
		{"reserved command with its flag", func(m *abi.Manifest) {
			m.Commands = append(m.Commands, abi.Command{Name: "get-remote-data", Description: "Get."})
		}, []want{{Warning, "commands[1].name", "isremotesyncin implies it"}}},
		{"test-module declared", func(m *abi.Manifest) {
			m.Commands = append(m.Commands, abi.Command{Name: "test-module", Description: "Test."})
		}, []want{{Warning, "commands[1].name", "always served"}}},
		{"url param without egress", func(m *abi.Manifest) { m.Egress = []string{"api.example.com"} },
			[]want{{Warning, "params[0].name", `egress has no "param:url"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.change(m)
			got := Lint(m)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d findings, want %d:\n%s", len(got), len(tt.want), render(got))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Severity != w.sev || g.Path != w.path || !strings.Contains(g.Message, w.text) {
					t.Errorf("finding %d = %s\nwant %s: %s: …%s…", i, g, w.sev, w.path, w.text)
				}
			}
		})
	}
}

func render(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// TestBaseIsValid keeps the fixture a manifest the host accepts, so the
// findings above are the linter's alone.
func TestBaseIsValid(t *testing.T) {
	if err := base().Validate(); err != nil {
		t.Fatal(err)
	}
}
