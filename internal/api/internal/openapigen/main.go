// Command openapigen regenerates the component schemas of
// internal/api/openapi.json from the Go types of host/api/apitypes, so the
// document and the server's responses cannot drift apart. The paths are
// written by hand; every JSON body in them refers to a generated
// component. Run it through `go generate ./internal/api`; its test fails while
// openapi.json is stale.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	doc := flag.String("doc", "openapi.json", "the OpenAPI document to regenerate in place")
	types := flag.String("types", "apitypes", "the source directory of package apitypes")
	flag.Parse()
	if err := run(*doc, *types); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}

func run(docPath, typesDir string) error {
	in, err := os.ReadFile(docPath)
	if err != nil {
		return err
	}
	out, err := generate(in, typesDir)
	if err != nil {
		return err
	}
	return os.WriteFile(docPath, out, 0o644)
}
