//go:build wasip1

// Command wasisleeper is a fault guest: command "sleep" calls time.Sleep for
// args.ms milliseconds, which the Go runtime turns into WASI poll_oneoff;
// "ok" succeeds.
package main

import (
	"encoding/json"
	"time"

	"github.com/connhost/connhost/plugins/faulty/rawabi"
)

func init() {
	rawabi.Serve(func(cmd string, args json.RawMessage) (any, error) {
		if cmd == "sleep" {
			var a struct {
				MS int64 `json:"ms"`
			}
			if err := json.Unmarshal(args, &a); err != nil {
				return nil, err
			}
			time.Sleep(time.Duration(a.MS) * time.Millisecond)
			return "slept", nil
		}
		return "ok", nil
	})
}

func main() {}
