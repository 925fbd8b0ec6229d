package host

import (
	"fmt"

	"github.com/connhost/connhost/abi"
)

// CallError is the error of a failed Execute or HandleHTTP: what was called
// and the typed error.
type CallError struct {
	Instance string // connector instance name
	Plugin   string // name@version
	Command  string
	Err      *abi.Error
}

// Error returns `instance "soc" plugin "ticketdesk@1.2.0" command "test-module": kind: message`.
func (e *CallError) Error() string {
	return fmt.Sprintf("instance %q plugin %q command %q: %v", e.Instance, e.Plugin, e.Command, e.Err)
}

// Unwrap returns the typed error, so abi.KindOf and errors.Is see its kind.
func (e *CallError) Unwrap() error { return e.Err }
