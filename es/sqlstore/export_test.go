package sqlstore

// LockKey is the key of the advisory lock that serialises the writes to a
// PostgreSQL store whose events table is schema.prefix+"events".
func LockKey(schema, prefix string) int64 { return lockKey(newNames(schema, prefix).raw) }
