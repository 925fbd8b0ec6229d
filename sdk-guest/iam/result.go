package iam

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/connhost/connhost/abi"
)

// Result is the outcome of an IAM command: XSOAR's IAM.Vendor object. A
// skipped command reports success, as XSOAR's IAMUserProfile.set_result
// does.
type Result struct {
	Brand        string `json:"brand"`
	InstanceName string `json:"instanceName"`
	Action       string `json:"action"`
	Success      bool   `json:"success"`
	Active       *bool  `json:"active"`
	ID           string `json:"id"`
	Username     string `json:"username"`
	Email        string `json:"email"`
	// ErrorCode is the app's status code, CodeUserDoesNotExist, or
	// CodeBadRequest for a bad user profile; null when unknown.
	ErrorCode    any    `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
	// Details is the app's user record, or the mapped profile when the app
	// returned none.
	Details any    `json:"details"`
	Skipped bool   `json:"skipped"`
	Reason  string `json:"reason"`

	// UserProfile is the input profile updated with the app's record
	// through mapper_in (XSOAR's IAM.UserProfile); nil without a record.
	UserProfile map[string]any `json:"-"`
}

// CommandResults renders the result for the war room and context: a
// markdown table of the result as readable output, the result under
// OutputsPrefix, and the updated user profile as raw response.
func (r Result) CommandResults() abi.CommandResults {
	cr := abi.CommandResults{ReadableOutput: r.Markdown(), OutputsPrefix: OutputsPrefix, Outputs: r}
	if r.UserProfile != nil {
		cr.RawResponse = map[string]any{"UserProfile": r.UserProfile}
	}
	return cr
}

// Markdown renders the result as XSOAR's IAM entries do: a one-row table,
// with the skip reason instead of the user when skipped; empty values are
// left out.
func (r Result) Markdown() string {
	var m map[string]any
	raw, _ := json.Marshal(r) // a Result of JSON values always marshals
	_ = json.Unmarshal(raw, &m)
	headers := []string{"brand", "instanceName", "success", "active", "id", "username", "email", "errorCode", "errorMessage", "details"}
	if r.Skipped {
		headers = []string{"brand", "instanceName", "skipped", "reason"}
	}
	var cols, vals []string
	for _, h := range headers {
		v := m[h]
		if v == nil || v == "" {
			continue
		}
		cols = append(cols, h)
		vals = append(vals, cell(v))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### %s User Results (%s)\n", title(r.Action), r.Brand)
	b.WriteString("|" + strings.Join(cols, "|") + "|\n")
	b.WriteString(strings.Repeat("|---", len(cols)) + "|\n")
	b.WriteString("| " + strings.Join(vals, " | ") + " |\n")
	return b.String()
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cell formats a value for a markdown table cell.
func cell(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		s = string(b)
	default:
		s = fmt.Sprint(x)
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", "<br>")
}
