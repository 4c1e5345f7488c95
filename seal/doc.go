// Package seal encrypts session records at rest with a ring of rotating
// master keys.
//
// A [Ring] holds the master keys: the first key is current and seals; the
// others only open, so records written before a rotation stay readable.
// [Ring.Box] derives, once per purpose, one AES-256-GCM key per master key
// with HKDF-SHA256 (secret = master key, no salt, info = "sesh/v1/" +
// purpose), so a record sealed for one purpose never opens under another.
// The caller binds each record to its storage location by passing the
// store key as additional data (ad); a record copied to another store key
// does not open.
//
// # Envelope format
//
// Every sealed record is a self-describing envelope, [Overhead] (33) bytes
// longer than its plaintext:
//
//	offset  size  field
//	0       1     format version: 1 = ring key (Seal), 2 = bound key (SealBound)
//	1       4     master key ID, big-endian, nonzero
//	5       12    nonce, random from crypto/rand
//	17      n     AES-256-GCM ciphertext of the n-byte plaintext
//	17+n    16    GCM tag
//
// The GCM additional data is the 17 header bytes (version, key ID, nonce)
// followed by the caller's ad, so every byte of the envelope is
// authenticated. Purpose separation comes from the per-purpose subkey and
// is not written in the envelope. Any malformed, truncated, extended or
// forged envelope, and any envelope opened with the wrong ad, purpose or
// bound secret, fails with an error matching [ErrInvalid]. A well-formed
// envelope whose key ID is not in the ring fails with [ErrUnknownKey]
// instead: that is a deployment fault (a key retired too early, or a
// server missing a new key), not bad input. [KeyID] reads the key ID
// without decrypting. The envelope hides the content, not the length.
//
// # Bound records
//
// [Box.SealBound] and [Box.OpenBound] also bind the record to a
// per-record secret, typically the raw session ID from the cookie (whose
// SHA-256 is the store key). The data key is HKDF-SHA256 with secret =
// the purpose subkey, salt = SHA-256(per-record secret), info =
// "sesh/v1/bound". (Hashing the salt first keeps secrets that differ only
// by trailing zero bytes from deriving the same key, as HMAC pads keys.)
// A copy of the store alone, even together with the master keys, does not
// reveal a bound record without the session ID, which the store never
// holds. Each call derives a fresh AES key, so bound operations cost a few
// microseconds and some allocations more than their ring counterparts.
//
// # Key rotation
//
// Keys are configured as a comma-separated list of "ID:secret" items, the
// form [Key.String] produces and [ParseRing] reads (the SESH_KEYS
// environment variable), current key first. IDs are nonzero 32-bit
// integers and must never be reused for a different secret. To rotate
// without logging anyone out:
//
//  1. Generate a key with a new ID ([GenerateKey]) and add it at the end of
//     the list on every server ("1:…,2:…"). It only opens, so servers that
//     already have it can read records sealed by servers that will make it
//     current first.
//  2. Once every server has it, move it to the front ("2:…,1:…"). New and
//     rewritten records are sealed with key 2; [Box.Open] reports
//     current == false for records still under key 1, and the caller
//     re-seals them on its next write.
//  3. After the maximum session lifetime has passed, every live record has
//     been rewritten or has expired: remove the old key ("2:…").
//
// A record whose key was removed fails with [ErrUnknownKey].
//
// # Limits
//
// Nonces are 96-bit random values, so a single AES key must not seal more
// than 2^32 records (NIST SP 800-38D); beyond that the chance of a nonce
// collision, which breaks GCM, is no longer negligible. The limit applies
// per master key and purpose for [Box.Seal], and per master key, purpose
// and per-record secret for [Box.SealBound]. Rotate well before it: at
// 1,000 writes a second, 2^32 seals take about 136 years.
//
// # Concurrency and allocation
//
// A [Ring] and every [Box] are safe for concurrent use by multiple
// goroutines; a Box is immutable after creation. [Box.Seal] and [Box.Open]
// append to dst and do not allocate when dst has enough capacity (ad up to
// 1 KiB). dst must not overlap the plaintext or envelope.
package seal
