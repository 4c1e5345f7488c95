//go:build !unix

package filestore

func setUmask(m int) int { return m }
