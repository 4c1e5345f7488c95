// Package sesh is secure, store-backed HTTP session management for
// net/http.
package sesh
