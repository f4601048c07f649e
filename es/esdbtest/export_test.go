package esdbtest

// KeepalivePolicy exposes the server's keepalive enforcement policy to the
// tests of package esdbtest_test.
var KeepalivePolicy = keepalivePolicy
