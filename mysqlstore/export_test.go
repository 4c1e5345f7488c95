package mysqlstore

// SetReturning makes s use DELETE ... RETURNING for Take, or not, instead
// of asking the server, so that the MySQL path can be tested on MariaDB.
func SetReturning(s *Store, yes bool) {
	if yes {
		s.returning.Store(1)
	} else {
		s.returning.Store(2)
	}
}

// ErrNumber exposes errNumber.
var ErrNumber = errNumber
