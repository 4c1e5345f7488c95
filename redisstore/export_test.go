package redisstore

// Queued returns how many of s's calls wait for a round trip.
func Queued(s *Store) int {
	s.pipe.mu.Lock()
	defer s.pipe.mu.Unlock()
	return len(s.pipe.queue)
}
