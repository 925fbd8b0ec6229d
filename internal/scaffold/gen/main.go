// Command gen writes the SDK archive that `connhost init` copies into new
// projects (run through `go generate ./internal/scaffold`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/connhost/connhost/internal/scaffold"
)

func main() {
	root := flag.String("root", "../..", "the repository root")
	out := flag.String("out", "sdk.txtar", "the archive to write")
	flag.Parse()
	b, err := scaffold.BuildSDKArchive(*root)
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
