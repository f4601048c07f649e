package esdbtest

import (
	"crypto/tls"
	"fmt"
)

// WithCertificate serves over TLS like [WithTLS], with cert instead of a
// certificate generated at start: a certificate the clients can verify
// (their tlsCAFile). A certificate without a private key is an error.
// [Server.ConnectionString] still says tlsVerifyCert=false, as the server
// does not know which CA the clients trust.
func WithCertificate(cert tls.Certificate) Option {
	return func(c *config) error {
		if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
			return fmt.Errorf("%w: TLS certificate without certificate or private key", ErrInvalidOption)
		}
		c.tls = true
		c.cert = &cert
		return nil
	}
}
