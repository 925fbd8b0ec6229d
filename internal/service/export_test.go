package service

// SetStartHook sets Options.onStart for tests outside the package.
func SetStartHook(o *Options, fn func(instance string) (done func())) { o.onStart = fn }

// StartConcurrency is startConcurrency, for tests.
var StartConcurrency = startConcurrency
