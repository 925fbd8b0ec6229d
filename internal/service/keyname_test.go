package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/connhost/connhost/internal/service"
)

// TestCheckAPIKeyName: the CLI's early check refuses exactly the names
// Create refuses, with the same error.
func TestCheckAPIKeyName(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, name := range []string{"ci", "a.b_c-d", "0", strings.Repeat("x", 64), "", "a b", "-x", ".x", strings.Repeat("x", 65), "ü", "a/b"} {
		t.Run(name, func(t *testing.T) {
			checkErr := service.CheckAPIKeyName(name)
			_, _, createErr := e.svc.APIKeys.Create(ctx, name)
			if (checkErr == nil) != (createErr == nil) {
				t.Fatalf("CheckAPIKeyName: %v; Create: %v", checkErr, createErr)
			}
			if checkErr != nil && (!errors.Is(checkErr, service.ErrInvalid) || checkErr.Error() != createErr.Error()) {
				t.Fatalf("CheckAPIKeyName: %v; Create: %v", checkErr, createErr)
			}
		})
	}
}
