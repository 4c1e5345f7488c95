package main

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sync"
	"unicode/utf8"
)

// demoUsers are the demo's accounts. Their passwords are hashed at
// start-up; only the hashes are kept.
var demoUsers = map[string]string{
	"alice": "wonderland",
	"bob":   "builder",
}

// hashIterations is the PBKDF2-HMAC-SHA256 work factor (OWASP's
// recommendation). The tests lower it: under the race detector one hash
// takes seconds.
var hashIterations = 600_000

const (
	saltLen        = 16
	hashLen        = 32
	maxPasswordLen = 1024
)

var errBadPassword = errors.New("a password must be 1 to 1024 characters")

// credential is a user's salted password hash.
type credential struct {
	salt, hash []byte
}

// userDB checks passwords against salted hashes, in constant time.
type userDB struct {
	mu    sync.RWMutex
	creds map[string]credential
	dummy credential // checked for unknown users, so that they take as long
}

func newUserDB(passwords map[string]string) (*userDB, error) {
	db := &userDB{creds: make(map[string]credential, len(passwords))}
	for name, pw := range passwords {
		c, err := newCredential(pw)
		if err != nil {
			return nil, err
		}
		db.creds[name] = c
	}
	var err error
	if db.dummy, err = newCredential("no user has this password"); err != nil {
		return nil, err
	}
	return db, nil
}

func newCredential(password string) (credential, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails
	h, err := hashPassword(password, salt)
	return credential{salt: salt, hash: h}, err
}

func hashPassword(password string, salt []byte) ([]byte, error) {
	return pbkdf2.Key(sha256.New, password, salt, hashIterations, hashLen)
}

// validPassword reports whether a password may be set.
func validPassword(pw string) bool {
	return pw != "" && len(pw) <= maxPasswordLen && utf8.ValidString(pw)
}

// check reports whether password is user's. An unknown user costs as
// much as a known one.
func (db *userDB) check(user, password string) bool {
	db.mu.RLock()
	c, known := db.creds[user]
	db.mu.RUnlock()
	if !known {
		c = db.dummy
	}
	if len(password) > maxPasswordLen {
		password = password[:maxPasswordLen]
		known = false
	}
	h, err := hashPassword(password, c.salt)
	return err == nil && subtle.ConstantTimeCompare(h, c.hash) == 1 && known
}

// set replaces the password of a known user.
func (db *userDB) set(user, password string) error {
	if !validPassword(password) {
		return errBadPassword
	}
	c, err := newCredential(password)
	if err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if _, ok := db.creds[user]; !ok {
		return errors.New("unknown user")
	}
	db.creds[user] = c
	return nil
}
