package main

import (
	"github.com/seshgo/sesh/examples/exampletest"
	"testing"
)

// startApp runs the example as `go run .` would and returns its base URL.
func startApp(t *testing.T) string { return exampletest.Start(t, run) }

// TestExample is the suite every framework example passes.
func TestExample(t *testing.T) { exampletest.Run(t, startApp) }
