package postgres

// LockKey is the key of the advisory lock that serialises the writes to a
// store whose events table is schema.prefix+"events".
func LockKey(schema, prefix string) int64 { return lockKey(schema + "." + prefix + "events") }
