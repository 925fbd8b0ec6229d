package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
)

func packCommand(a *app) *cobra.Command {
	c := leaf("pack --manifest manifest.json -o OUT.wasm IN.wasm", "validate a manifest and embed it into a built module",
		"Validates the manifest as the host does (SPEC §7: exact keys, size caps, egress, ...), checks the\n"+
			"module against the default module limits and ABI v1 imports (SPEC §8), and writes IN.wasm with\n"+
			"the manifest in its "+abi.ManifestSection+" custom section to OUT.wasm, replacing any earlier\n"+
			"manifest. Exits 3 when the module is beyond the limits.")
	manifestPath := c.Flags().String("manifest", "manifest.json", "manifest JSON `FILE`")
	out := c.Flags().StringP("output", "o", "", "output .wasm `FILE` (required)")
	_ = c.MarkFlagFilename("manifest", "json")
	_ = c.MarkFlagFilename("output", "wasm")
	c.ValidArgsFunction = wasmFiles
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 || *out == "" {
			return argsErr("plugin pack: want one input module and -o OUT.wasm")
		}
		return runPack(c.Context(), a, args[0], *manifestPath, *out)
	}
	return c
}

func runPack(ctx context.Context, a *app, in, manifestPath, out string) error {
	m, err := readManifestFile(manifestPath)
	if err != nil {
		return usageErr("plugin pack: %w", err)
	}
	wasm, err := os.ReadFile(in)
	if err != nil {
		return usageErr("plugin pack: %w", err)
	}
	packed, err := abi.EmbedManifest(wasm, m)
	if err != nil {
		return usageErr("plugin pack: %s: %w", in, err)
	}
	// The gate that install runs, with the default limits: an author learns
	// here, not from a server, that a module is refused.
	if err := host.CheckModule(ctx, packed, host.ModuleLimits{}); err != nil {
		return withCode(exitIncompatible, fmt.Errorf("plugin pack: %s: %w", in, err))
	}
	if err := writeFileAtomic(out, packed); err != nil {
		return fmt.Errorf("plugin pack: %w", err)
	}
	fmt.Fprintf(a.stderr, "packed %s@%s into %s (%d bytes)\n", m.Name, m.Version, out, len(packed))
	return nil
}

// readManifestFile decodes a manifest file as the host decodes an embedded
// one (abi.DecodeManifest: size, exact keys, no trailing data) and
// validates it, so that pack refuses what install would.
func readManifestFile(path string) (*abi.Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := abi.DecodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}

// writeFileAtomic writes through a temporary file and a rename so a reader
// (or a crashed pack) never sees a half-written module.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
