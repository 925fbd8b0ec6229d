//go:build race

package host

// raceDetector: the race detector slows Go code, wazero's compiler and the
// host's side of every call, 5 to 10 times; timing budgets widen under it
// (the run without it holds them to their documented values).
const raceDetector = true
