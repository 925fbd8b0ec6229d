package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/engines"
	"github.com/connhost/connhost/internal/signing"
)

// engineOptions are the configuration options of `connhost engine`: its
// sandboxes' runtime, egress and trust policy. Instance limits come from
// the server with each instance.
var engineOptions = []string{"log", "cache_dir", "limits", "egress", "signing"}

// envAPIKey is where `engine enroll` reads the API key from, so that it is
// not in argv.
const envAPIKey = "CONNHOST_API_KEY"

// engineCreds is the credentials file `engine enroll` writes and
// `connhost engine` reads: the engine's secret seed and where it connects.
type engineCreds struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	URL   string `json:"url"`
	Seed  string `json:"seed"`
}

func engineCommand(a *app) *cobra.Command {
	return group(a, "engine", "run connector instances on this machine for a connhost server (docs/engines.md)",
		engineRunCommand(a),
		engineEnrollCommand(a),
	)
}

func engineRunCommand(a *app) *cobra.Command {
	c := leaf("run --creds FILE", "run an engine: the commands of a group's instances, on this machine",
		"Connects outbound to a connhost server's NATS endpoint (engines.listen) with the credentials of\n"+
			"--creds (from `connhost engine enroll`), announces its name, group, version and capacity, and\n"+
			"runs the commands of the instances assigned to its group (settings.engine_group) in its own\n"+
			"sandboxes, with the limits the server sets. Host functions (incidents, entries, integration\n"+
			"context...) go to the server. Params are held in memory only. Plugins are fetched from the\n"+
			"server by SHA-256 and checked against this engine's own signing.* trust policy.\n"+
			"SIGTERM or SIGINT: long-running leases are released and the engine disconnects. See docs/engines.md.")
	f := c.Flags()
	creds := f.String("creds", "", "credentials `FILE` written by connhost engine enroll (keep it private)")
	url := f.String("url", "", "NATS `URL` of the server (nats://host:port or tls://host:port); default: the URL in --creds")
	caFile := f.String("ca-file", "", "PEM `FILE` of the CA that signed the server's engines.tls_cert; default: the system roots")
	capacity := f.Int("capacity", 16, "commands this engine runs at once (1-4096)")
	config.RegisterFlags(f, engineOptions...)
	_ = c.MarkFlagFilename("creds", "json")
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 0 {
			return argsErr("engine run: unexpected arguments %q", args)
		}
		return runEngine(c.Context(), a, c.Flags(), *creds, *url, *caFile, *capacity)
	}
	return c
}

func runEngine(ctx context.Context, a *app, fs *pflag.FlagSet, credsFile, url, caFile string, capacity int) error {
	if credsFile == "" {
		return argsErr("engine run: --creds is required")
	}
	if capacity < 1 || capacity > 4096 {
		return usageErr("engine: --capacity %d: want 1-4096", capacity)
	}
	raw, err := os.ReadFile(credsFile)
	if err != nil {
		return usageErr("engine: --creds: %w", err)
	}
	var cr engineCreds
	if err := json.Unmarshal(raw, &cr); err != nil || cr.Seed == "" {
		return usageErr("engine: --creds %s: not a credentials file of connhost engine enroll", credsFile)
	}
	if url == "" {
		url = cr.URL
	}
	var tc *tls.Config
	if caFile != "" || strings.HasPrefix(url, "tls://") {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return usageErr("engine: --ca-file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return usageErr("engine: --ca-file %s holds no PEM certificate", caFile)
			}
		}
	}
	cfg, err := loadRuntimeConfig(a, fs)
	if err != nil {
		return err
	}
	policy, err := signing.LoadPolicy(signing.PolicyConfig{TrustedKeys: cfg.Signing.TrustedKeys, RequireSigned: cfg.Signing.RequireSigned})
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("signing.trusted_keys: %w", err))
	}
	base := context.WithoutCancel(ctx)
	log, rt, err := openRuntime(base, a, cfg)
	if err != nil {
		return err
	}
	defer rt.Close(base)
	e, err := engines.Connect(base, engines.EngineOptions{
		URL: url, Name: cr.Name, Group: cr.Group, Seed: []byte(cr.Seed), TLS: tc, Version: versionString(),
		Capacity: capacity, Runtime: rt, Policy: policy, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "connhost engine %s (group %s) connected to %s\n", cr.Name, cr.Group, url)
	<-ctx.Done()
	log.Info().Str("engine", cr.Name).Msg("engine stopping: releasing leases")
	sctx, cancel := context.WithTimeout(base, 30*time.Second)
	defer cancel()
	return e.Close(sctx)
}

func engineEnrollCommand(a *app) *cobra.Command {
	c := leaf("enroll", "enroll an engine with a running server and write its credentials file",
		"Asks the server (POST /api/v1/engines, an admin API key in "+envAPIKey+") for the credentials of a\n"+
			"new engine NAME in GROUP and writes them to -o FILE (mode 0600): the engine's NKey seed, shown this\n"+
			"once, and the server's NATS URL. Copy the file to the engine's machine and run\n"+
			"`connhost engine run --creds FILE` there (--url when the engine reaches the server at another address).")
	f := c.Flags()
	server := f.String("server", "http://127.0.0.1:8080", "`URL` of the connhost server's HTTP API")
	name := f.String("name", "", "the engine's `NAME` (a-z, 0-9, _ or -)")
	group := f.String("group", "", "the engine's `GROUP` (a-z, 0-9, _ or -)")
	out := f.StringP("output", "o", "", "credentials `FILE` to write (must not exist)")
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 0 {
			return argsErr("engine enroll: unexpected arguments %q", args)
		}
		return runEnroll(c.Context(), a, *server, *name, *group, *out)
	}
	return c
}

func runEnroll(ctx context.Context, a *app, server, name, group, out string) error {
	if out == "" {
		return argsErr("engine enroll: -o FILE is required")
	}
	if err := errors.Join(engines.ValidName("--name", name), engines.ValidName("--group", group)); err != nil {
		return usageErr("engine enroll: %w", err)
	}
	if _, err := os.Stat(out); err == nil {
		return usageErr("engine enroll: %s exists; the credentials go to a new file", out)
	}
	key, ok := lookupEnv(a.environ, envAPIKey)
	if !ok || key == "" {
		return usageErr("engine enroll: set %s to an admin API key", envAPIKey)
	}
	body, _ := json.Marshal(apitypes.EngineInput{Name: name, Group: group})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/api/v1/engines", bytes.NewReader(body))
	if err != nil {
		return usageErr("engine enroll: --server: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("engine enroll: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("engine enroll: server answered %s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	var en apitypes.EngineEnrollment
	if err := json.Unmarshal(raw, &en); err != nil {
		return fmt.Errorf("engine enroll: answer: %w", err)
	}
	data, _ := json.MarshalIndent(engineCreds{Name: en.Name, Group: en.Group, URL: en.URL, Seed: en.Seed}, "", "  ")
	fh, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("engine enroll: %w (the engine is enrolled; its seed is lost: enroll another name)", err)
	}
	if _, err := fh.Write(append(data, '\n')); err != nil {
		_ = fh.Close()
		return fmt.Errorf("engine enroll: writing %s: %w", out, err)
	}
	if err := fh.Close(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "engine %s enrolled in group %s; credentials written to %s (public key %s)\n", en.Name, en.Group, out, en.PublicKey)
	return nil
}
