//go:build wasip1

// Command membomb is a fault guest: command "bomb" allocates until the
// runtime runs out of linear memory; "ok" succeeds.
package main

import (
	"encoding/json"

	"github.com/connhost/connhost/plugins/faulty/rawabi"
)

var hold [][]byte

func init() {
	rawabi.Serve(func(cmd string, _ json.RawMessage) (any, error) {
		if cmd == "bomb" {
			for {
				b := make([]byte, 1<<20)
				b[0] = 1
				hold = append(hold, b)
			}
		}
		return "ok", nil
	})
}

func main() {}
