package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/internal/signing"
)

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

func keygenCommand(a *app) *cobra.Command {
	c := leaf("keygen -o PREFIX", "create a minisign key pair for signing plugins",
		"Writes a minisign secret key to PREFIX (mode 0600, scrypt-encrypted with a password read from\n"+
			"--password-file or stdin, unless --no-password) and its public key to PREFIX.pub. Both work\n"+
			"with the standard minisign tool. Neither file is written unless both can be.")
	f := c.Flags()
	out := f.StringP("output", "o", "", "path `PREFIX` of the key files (required)")
	noPassword := f.Bool("no-password", false, "write the secret key unencrypted (CI, tests)")
	force := f.Bool("force", false, "overwrite existing key files")
	pwFile := passwordFlag(f)
	kdfCost := f.String("kdf-cost", "sensitive", "scrypt cost of the encrypted key: `LEVEL` sensitive (minisign's default:\n"+
		"1 GiB, a second or more per use) or interactive (16 MiB, for a key unlocked often, e.g. by CI)")
	aliasFlag(a, f, "out", "output")
	c.ValidArgsFunction = cobra.NoFileCompletions
	_ = c.RegisterFlagCompletionFunc("kdf-cost", cobra.FixedCompletions([]cobra.Completion{"sensitive", "interactive"}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(_ *cobra.Command, args []string) error {
		if *out == "" || len(args) != 0 {
			return argsErr("plugin keygen: want -o PREFIX and no arguments")
		}
		return runKeygen(a, *out, *pwFile, *kdfCost, *noPassword, *force)
	}
	return c
}

func runKeygen(a *app, out, pwFile, kdfCost string, noPassword, force bool) error {
	kdf, ok := kdfLevels[kdfCost]
	if !ok {
		return usageErr("plugin keygen: --kdf-cost %q: want sensitive or interactive", kdfCost)
	}
	// Both files are checked first: a refused .pub must not leave a
	// secret key behind.
	if !force {
		for _, path := range []string{out, out + ".pub"} {
			if _, err := os.Lstat(path); err == nil {
				return usageErr("%s exists (use --force to overwrite)", path)
			}
		}
	}
	var pw []byte
	if !noPassword {
		var err error
		if pw, err = readPassword(a, pwFile); err != nil {
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
	if err := writeNew(out, secret, 0o600, force); err != nil {
		return err
	}
	if err := writeNew(out+".pub", k.Public().Marshal(), 0o644, force); err != nil {
		os.Remove(out)
		return err
	}
	fmt.Fprintf(a.stdout, "key ID %s\nsecret key %s\npublic key %s.pub: %s\n", k.ID, out, out, k.Public())
	return nil
}

func signCommand(a *app) *cobra.Command {
	c := leaf("sign --key PRIV FILE.wasm...", "sign plugins (minisign .minisig next to each .wasm)",
		"Signs each plugin with the trusted comment\n  "+signing.PluginCommentTag+" name=NAME version=VERSION sha256=HEX\n"+
			"read from its manifest and hash, writing FILE.wasm.minisig (minisign format). Nothing is written\n"+
			"unless every file can be signed.")
	keyPath := c.Flags().String("key", "", "minisign secret key `FILE` (required)")
	pwFile := passwordFlag(c.Flags())
	c.ValidArgsFunction = wasmFiles
	c.RunE = func(_ *cobra.Command, args []string) error {
		if *keyPath == "" || len(args) == 0 {
			return argsErr("plugin sign: want --key PRIV and one or more FILE.wasm")
		}
		return runSign(a, *keyPath, *pwFile, args)
	}
	return c
}

func runSign(a *app, keyPath, pwFile string, files []string) error {
	k, err := loadSecretKey(a, keyPath, pwFile)
	if err != nil {
		return err
	}
	sigs := make([][]byte, len(files))
	for i, file := range files {
		wasm, err := os.ReadFile(file)
		if err != nil {
			return usageErr("plugin sign: %w", err)
		}
		if sigs[i], err = signing.SignPlugin(k, wasm); err != nil {
			return withCode(exitIncompatible, fmt.Errorf("plugin sign %s: %w", file, err))
		}
	}
	for i, file := range files {
		if err := writeFileAtomic(file+".minisig", sigs[i]); err != nil {
			return fmt.Errorf("plugin sign: %w", err)
		}
		fmt.Fprintf(a.stdout, "signed %s with key ID %s: %s.minisig\n", file, k.ID, file)
	}
	return nil
}

func verifyCommand(a *app) *cobra.Command {
	c := leaf("verify --pub PUB FILE.wasm", "verify a plugin's signature against public keys",
		"Verifies FILE.wasm against its signature (FILE.wasm.minisig unless --sig) and the trusted\n"+
			"public keys, as an install with require_signed on would. Exits 1 with the failing check\n"+
			"(unsigned, unknown key, tampered signature, tampered file, trusted comment mismatch).")
	pubs := c.Flags().StringArray("pub", nil, "trusted public key: a .pub `FILE` or the bare base64 key (repeatable; required)")
	sigPath := c.Flags().String("sig", "", "signature `FILE` (default FILE.wasm.minisig)")
	_ = c.MarkFlagFilename("pub", "pub")
	_ = c.MarkFlagFilename("sig", "minisig")
	c.ValidArgsFunction = wasmFiles
	c.RunE = func(_ *cobra.Command, args []string) error {
		if len(*pubs) == 0 || len(args) != 1 {
			return argsErr("plugin verify: want --pub PUB and one FILE.wasm")
		}
		return runVerify(a, *pubs, *sigPath, args[0])
	}
	return c
}

func runVerify(a *app, pubs []string, sigPath, file string) error {
	policy, err := signing.LoadPolicy(signing.PolicyConfig{TrustedKeys: pubs, RequireSigned: true})
	if err != nil {
		return usageErr("plugin verify: --pub: %w", err)
	}
	wasm, err := os.ReadFile(file)
	if err != nil {
		return usageErr("plugin verify: %w", err)
	}
	if sigPath == "" {
		sigPath = file + ".minisig"
	}
	sig, err := os.ReadFile(sigPath)
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
