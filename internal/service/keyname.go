package service

import "fmt"

// CheckAPIKeyName returns the ErrInvalid that Create gives a bad key name
// (the same rule and message), so that the CLI can refuse the name before
// it opens, and so creates, a data directory.
func CheckAPIKeyName(name string) error {
	if !instanceNameRe.MatchString(name) {
		return fmt.Errorf("%w: key name %q: want letters, digits, '.', '_' or '-'", ErrInvalid, name)
	}
	return nil
}
