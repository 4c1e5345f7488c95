module github.com/seshgo/sesh/cmd

go 1.25.0

require github.com/seshgo/sesh v0.0.0

replace github.com/seshgo/sesh => ../
