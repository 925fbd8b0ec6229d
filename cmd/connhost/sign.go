package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/connhost/connhost/internal/signing"
)

func keygenCommand() *command {
	return &command{name: "keygen", summary: "create a minisign key pair for signing plugins", run: runKeygen}
}

func signCommand() *command {
	return &command{name: "sign", summary: "sign plugins (minisign .minisig next to each .wasm)", run: runSign}
}

func verifyCommand() *command {
	return &command{name: "verify", summary: "verify a plugin's signature against public keys", run: runVerify}
}

// passwordFlag registers --password-file, shared by the commands that read
// or write an encrypted secret key.
func passwordFlag(fs *pflag.FlagSet) *string {
	return fs.String("password-file", "", "read the secret key's password from the first line of `FILE` (default: the first line of stdin)")
}

// readPassword returns the password from file, or the first line of stdin.
// There is no echo-free prompt: pipe the password or use a file, so it
// stays out of argv and of the terminal scrollback.
func readPassword(a *app, file string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, usageErr("--password-file: %w", err)
		}
		defer f.Close()
		r = f
	} else if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		fmt.Fprint(a.stderr, "password (input is echoed; prefer --password-file): ")
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return nil, usageErr("empty password (use --no-password for an unencrypted key)")
	}
	return []byte(pw), nil
}

// loadSecretKey reads a minisign secret key file, asking for its password
// only when it is encrypted.
func loadSecretKey(a *app, path, passwordFile string) (signing.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return signing.PrivateKey{}, usageErr("--key: %w", err)
	}
	enc, err := signing.PrivateKeyEncrypted(b)
	if err != nil {
		return signing.PrivateKey{}, usageErr("--key %s: %w", path, err)
	}
	var pw []byte
	if enc {
		if pw, err = readPassword(a, passwordFile); err != nil {
			return signing.PrivateKey{}, err
		}
	}
	k, err := signing.ParsePrivateKey(b, pw)
	if err != nil {
		return signing.PrivateKey{}, usageErr("--key %s: %w", path, err)
	}
	return k, nil
}

// writeNew writes a file that must not exist unless force is set.
func writeNew(path string, b []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return usageErr("%s exists (use --force to overwrite)", path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// kdfLevels are the --kdf-cost values.
var kdfLevels = map[string]signing.KDFParams{
	"sensitive":   signing.SensitiveKDF,
	"interactive": signing.InteractiveKDF,
}

func runKeygen(_ context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost plugin keygen", "--out PREFIX [flags]",
		"Writes a minisign secret key to PREFIX (mode 0600, scrypt-encrypted with a password read from\n"+
			"--password-file or stdin, unless --no-password) and its public key to PREFIX.pub. Both work\n"+
			"with the standard minisign tool.")
	out := fs.String("out", "", "path `PREFIX` of the key files (required)")
	noPassword := fs.Bool("no-password", false, "write the secret key unencrypted (CI, tests)")
	force := fs.Bool("force", false, "overwrite existing key files")
	pwFile := passwordFlag(fs)
	kdfCost := fs.String("kdf-cost", "sensitive", "scrypt cost of the encrypted key: `LEVEL` sensitive (minisign's default:\n"+
		"1 GiB, a second or more per use) or interactive (16 MiB, for a key unlocked often, e.g. by CI)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		fs.Usage()
		return usageErr("plugin keygen: want --out PREFIX and no arguments")
	}
	kdf, ok := kdfLevels[*kdfCost]
	if !ok {
		return usageErr("plugin keygen: --kdf-cost %q: want sensitive or interactive", *kdfCost)
	}
	var pw []byte
	if !*noPassword {
		var err error
		if pw, err = readPassword(a, *pwFile); err != nil {
			return err
		}
	}
	k, err := signing.GenerateKey(nil)
	if err != nil {
		return err
	}
	secret, err := signing.MarshalPrivateKey(k, pw, kdf)
	if err != nil {
		return fmt.Errorf("plugin keygen: %w", err)
	}
	if err := writeNew(*out, secret, 0o600, *force); err != nil {
		return err
	}
	if err := writeNew(*out+".pub", k.Public().Marshal(), 0o644, *force); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "key ID %s\nsecret key %s\npublic key %s.pub: %s\n", k.ID, *out, *out, k.Public())
	return nil
}

func runSign(_ context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost plugin sign", "--key PRIV FILE.wasm... [flags]",
		"Signs each plugin with the trusted comment\n  "+signing.PluginCommentTag+" name=NAME version=VERSION sha256=HEX\n"+
			"read from its manifest and hash, writing FILE.wasm.minisig (minisign format).")
	keyPath := fs.String("key", "", "minisign secret key `FILE` (required)")
	pwFile := passwordFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || fs.NArg() == 0 {
		fs.Usage()
		return usageErr("plugin sign: want --key PRIV and one or more FILE.wasm")
	}
	k, err := loadSecretKey(a, *keyPath, *pwFile)
	if err != nil {
		return err
	}
	for _, file := range fs.Args() {
		wasm, err := os.ReadFile(file)
		if err != nil {
			return usageErr("plugin sign: %w", err)
		}
		sig, err := signing.SignPlugin(k, wasm)
		if err != nil {
			return withCode(exitIncompatible, fmt.Errorf("plugin sign %s: %w", file, err))
		}
		if err := writeFileAtomic(file+".minisig", sig); err != nil {
			return fmt.Errorf("plugin sign: %w", err)
		}
		fmt.Fprintf(a.stdout, "signed %s with key ID %s: %s.minisig\n", file, k.ID, file)
	}
	return nil
}

func runVerify(_ context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost plugin verify", "--pub PUB FILE.wasm [flags]",
		"Verifies FILE.wasm against its signature (FILE.wasm.minisig unless --sig) and the trusted\n"+
			"public keys, as an install with require_signed on would. Exits 1 with the failing check\n"+
			"(unsigned, unknown key, tampered signature, tampered file, trusted comment mismatch).")
	pubs := fs.StringArray("pub", nil, "trusted public key: a .pub `FILE` or the bare base64 key (repeatable; required)")
	sigPath := fs.String("sig", "", "signature `FILE` (default FILE.wasm.minisig)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(*pubs) == 0 || fs.NArg() != 1 {
		fs.Usage()
		return usageErr("plugin verify: want --pub PUB and one FILE.wasm")
	}
	file := fs.Arg(0)
	policy, err := signing.LoadPolicy(signing.PolicyConfig{TrustedKeys: *pubs, RequireSigned: true})
	if err != nil {
		return usageErr("plugin verify: --pub: %w", err)
	}
	wasm, err := os.ReadFile(file)
	if err != nil {
		return usageErr("plugin verify: %w", err)
	}
	if *sigPath == "" {
		*sigPath = file + ".minisig"
	}
	sig, err := os.ReadFile(*sigPath)
	if errors.Is(err, os.ErrNotExist) {
		sig = nil // Verify reports the plugin as unsigned
	} else if err != nil {
		return fmt.Errorf("plugin verify: %w", err)
	}
	v, err := policy.Verify(wasm, sig)
	if err != nil {
		return fmt.Errorf("plugin verify %s: %w", file, err)
	}
	fmt.Fprintf(a.stdout, "verified %s sha256 %s signed by key ID %s\n", v.Label(), v.SHA256, v.KeyID)
	return nil
}
