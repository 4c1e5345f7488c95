package seal

import "io"

// SetRandReader replaces the nonce source until restore is called. Tests
// that use it must not run in parallel.
func SetRandReader(r io.Reader) (restore func()) {
	old := randReader
	randReader = r
	return func() { randReader = old }
}
