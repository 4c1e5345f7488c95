module github.com/seshgo/sesh/examples/chi

go 1.25.0

require (
	github.com/go-chi/chi/v5 v5.5.0
	github.com/seshgo/sesh v0.0.0
	github.com/seshgo/sesh/examples/exampletest v0.0.0
)

replace github.com/seshgo/sesh => ../../

replace github.com/seshgo/sesh/examples/exampletest => ../exampletest
