package bus

// WithoutTelemetry switches the bus's telemetry off entirely, for the
// benchmarks that measure what the no-op telemetry costs.
func WithoutTelemetry() Option {
	return func(c *config) error {
		c.noTelemetry = true
		return nil
	}
}
