// Command gen writes the JSON Schemas of package abi into a directory
// (run through `go generate ./internal/abischema`).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	schema "github.com/connhost/connhost/internal/abischema"
)

func main() {
	abiDir := flag.String("abi", "..", "source directory of package abi")
	out := flag.String("out", ".", "directory to write the *.schema.json files into")
	flag.Parse()
	files, err := schema.Generate(*abiDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
