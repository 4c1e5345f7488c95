package csrf

// Internals for the external tests.
var (
	Mask     = mask
	Verify   = verify
	TokenLen = tokenLen
)
